"""The invoice file for MCPs that do not take 837P: one CSV row per service line, each column one 837P element.

The DHCS minimum data elements for invoices are not available to us (CALAIM.md, Money), so the layout is the
837P itself flattened: the header names the 837P element each column carries, and a row can be turned back
into the 837P segment it came from. Claims and invoices follow the same timeliness rules.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from claims.x12.x837p import ProfessionalClaim, money, quantity

# (column, 837P element it maps to)
COLUMNS: tuple[tuple[str, str], ...] = (
    ("claim_id", "2300 CLM01"),
    ("claim_total", "2300 CLM02"),
    ("place_of_service", "2300 CLM05-1"),
    ("frequency_code", "2300 CLM05-3"),
    ("payer_claim_number", "2300 REF*F8 REF02"),
    ("prior_authorization", "2300 REF*G1 REF02"),
    ("diagnosis_codes", "2300 HI (ABK, then ABF), separated by |"),
    ("billing_provider_name", "2010AA NM103"),
    ("billing_provider_npi", "2010AA NM109"),
    ("billing_provider_tin", "2010AA REF*EI REF02"),
    ("billing_provider_address", "2010AA N301"),
    ("billing_provider_city", "2010AA N401"),
    ("billing_provider_state", "2010AA N402"),
    ("billing_provider_zip", "2010AA N403"),
    ("payer_name", "2010BB NM103"),
    ("payer_id", "2010BB NM109"),
    ("subscriber_cin", "2010BA NM109 (qualifier MI)"),
    ("subscriber_last_name", "2010BA NM103"),
    ("subscriber_first_name", "2010BA NM104"),
    ("subscriber_birth_date", "2010BA DMG02 (CCYYMMDD)"),
    ("subscriber_sex", "2010BA DMG03"),
    ("subscriber_address", "2010BA N301"),
    ("subscriber_city", "2010BA N401"),
    ("subscriber_state", "2010BA N402"),
    ("subscriber_zip", "2010BA N403"),
    ("rendering_provider_npi", "2310B NM109"),
    ("line_number", "2400 LX01"),
    ("procedure_code", "2400 SV101-2"),
    ("modifiers", "2400 SV101-3..6, separated by |"),
    ("line_charge", "2400 SV102"),
    ("units", "2400 SV104 (unit basis UN)"),
    ("diagnosis_pointers", "2400 SV107, separated by |"),
    ("service_date_from", "2400 DTP*472 (CCYYMMDD)"),
    ("service_date_to", "2400 DTP*472 RD8 end (CCYYMMDD)"),
    ("line_control_number", "2400 REF*6R REF02"),
)


def build_invoice(claims: Sequence[ProfessionalClaim]) -> str:
    """The invoice CSV (header row of column names, then one row per service line). Raises ValueError if empty."""
    if not claims:
        raise ValueError("an invoice needs at least one claim")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([name for name, _ in COLUMNS])
    for claim in sorted(claims, key=lambda c: c.claim_id):
        provider, subscriber = claim.billing_provider, claim.subscriber
        rendering = claim.rendering_provider.npi if claim.rendering_provider is not None else provider.npi
        for number, line in enumerate(claim.lines, start=1):
            writer.writerow([
                claim.claim_id, money(claim.total_charge), claim.place_of_service, claim.frequency_code,
                claim.payer_claim_number or "", claim.prior_authorization or "", "|".join(claim.diagnosis_codes),
                provider.name, provider.npi, provider.tin, provider.address.line1, provider.address.city,
                provider.address.state, provider.address.zip, claim.payer.name, claim.payer.identifier,
                subscriber.cin, subscriber.last_name, subscriber.first_name, subscriber.birth_date.strftime("%Y%m%d"),
                subscriber.sex, subscriber.address.line1, subscriber.address.city, subscriber.address.state,
                subscriber.address.zip, rendering, number, line.procedure_code, "|".join(line.modifiers),
                money(line.charge), quantity(line.units), "|".join(str(p) for p in line.diagnosis_pointers),
                line.service_from.strftime("%Y%m%d"), (line.service_to or line.service_from).strftime("%Y%m%d"),
                line.control_number or "",
            ])
    return out.getvalue()
