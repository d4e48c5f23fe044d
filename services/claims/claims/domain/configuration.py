"""Per-MCP billing configuration: contract profile (837P or invoice, billing provider, timely filing, CHW
threshold) and effective-dated fee schedules, plus the hub's and CBOs' billing identities.

Loaded from YAML or JSON by the composition root (CLAIMS_BILLING_CONFIG); these models only validate it.
Rates are set by each MCP contract, not by DHCS (CALAIM.md, Money), so nothing here has a default price.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.reference.identifiers import npi_problem
from shared.reference.plans import plan_by_code


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ClaimFormat(StrEnum):
    """How an MCP takes claims."""

    X12_837P = "837p"
    INVOICE = "invoice"


class BillingProviderRole(StrEnum):
    """Who bills the MCP under its contract: the hub, or the CBO that rendered the service."""

    HUB = "hub"
    CBO = "cbo"


class ThresholdAction(StrEnum):
    """What the CHW 12-unit care-plan threshold does without a care plan: refuse, or bill and flag."""

    BLOCK = "block"
    FLAG = "flag"


class RateBasis(StrEnum):
    """How a rate turns encounters into an expected amount."""

    PMPM = "pmpm"  # per member per month: the first billable encounter of the month carries it
    PER_UNIT = "per_unit"
    PER_ENCOUNTER = "per_encounter"
    ONE_TIME_ENGAGEMENT = "one_time_engagement"  # once per member, on the first successful outreach
    OUTREACH = "outreach"  # per outreach attempt, successful or not, up to the profile's cap


class Address(_Config):
    """A postal address as 837P N3/N4 carries it."""

    line1: str
    line2: str | None = None
    city: str
    state: str = Field("CA", pattern=r"^[A-Z]{2}$")
    zip: str = Field(pattern=r"^[0-9]{5}([0-9]{4})?$")


class BillingIdentity(_Config):
    """An organization that can be the 837P billing provider (loop 2010AA)."""

    name: str = Field(min_length=1, max_length=60)
    npi: str
    tin: str = Field(pattern=r"^[0-9]{9}$", description="Employer identification number (REF*EI).")
    address: Address
    taxonomy: str | None = Field(None, pattern=r"^[0-9A-Z]{9}X$")

    @field_validator("npi")
    @classmethod
    def _npi(cls, value: str) -> str:
        problem = npi_problem(value)
        if problem is not None:
            raise ValueError(f"NPI {problem}")
        return value

    @field_validator("address")
    @classmethod
    def _zip_plus_four(cls, value: Address) -> Address:
        # 005010X222A1 2010AA N403: the billing provider's ZIP must be the full nine digits.
        if len(value.zip) != 9:
            raise ValueError("a billing provider's ZIP must be 9 digits (ZIP+4)")
        return value


class Rate(_Config):
    """One fee schedule line: which encounters it prices (service/program, code, modifiers) and how."""

    basis: RateBasis
    amount: Decimal = Field(ge=0, decimal_places=2)
    program: Literal["ecm", "cs", "chw"]
    service_code: str | None = Field(None, description="e.g. ecm_outreach, housing_deposits; None: any.")
    hcpcs: str | None = None
    modifiers: tuple[str, ...] | None = Field(None, description="Exact modifier set; None: any.")

    def specificity(self) -> int:
        """More specific rates win: a modifier set beats a code, a code beats a service, a service a program."""
        return (4 if self.modifiers is not None else 0) + (2 if self.hcpcs else 0) + (1 if self.service_code else 0)


class FeeSchedule(_Config):
    """The rates of one MCP contract between two dates (both inclusive; no end: still in force)."""

    effective_from: date
    effective_to: date | None = None
    rates: tuple[Rate, ...]

    @model_validator(mode="after")
    def _ordered(self) -> FeeSchedule:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        return self

    def in_force_on(self, day: date) -> bool:
        """True when the schedule prices services on `day`."""
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


class OutreachCap(_Config):
    """Outreach is paid whether or not it succeeds, up to this many attempts per member per period."""

    attempts: int = Field(ge=0)
    period: Literal["month", "lifetime"] = "lifetime"


class Party(_Config):
    """An interchange party: ISA qualifier/id and GS application code."""

    qualifier: str = Field("ZZ", min_length=2, max_length=2)
    id: str = Field(min_length=1, max_length=15)
    application_code: str = Field(min_length=1, max_length=15)


class BatchSchedule(_Config):
    """When scheduled batches run for an MCP (Pacific time)."""

    at: time = time(18, 0)
    weekdays: tuple[int, ...] = Field((0, 1, 2, 3, 4), description="0 = Monday.")


class BillingProfile(_Config):
    """What an MCP contract says about billing (per-MCP [practice] and [unconfirmed] settings)."""

    claim_format: ClaimFormat = ClaimFormat.X12_837P
    billing_provider: BillingProviderRole = BillingProviderRole.HUB
    timely_filing_days: int = Field(180, ge=90, description="[unconfirmed] a plan may not require filing "
                                    "sooner than 90 days after service for contracted providers.")
    chw_threshold_action: ThresholdAction = ThresholdAction.BLOCK
    chw_counting_period: Literal["calendar_year", "rolling_12_months"] | None = Field(
        None, description="None: the reference default (shared.reference.services.chw_care_plan_rule).")
    overlap_period: Literal["month"] = Field("month", description="ECM and CHW never in the same period.")
    require_eligibility: bool = Field(True, description="Refuse encounters without eligibility on the date.")
    acceptance: Literal["277ca", "999"] = Field(
        "277ca", description="Which acknowledgment moves a claim to accepted (MCPs without a 277CA: 999).")
    outreach_cap: OutreachCap = OutreachCap(attempts=3, period="month")
    payer_name: str
    payer_id: str
    receiver_name: str
    receiver_id: str
    interchange: Party
    usage: Literal["P", "T"] = "P"
    schedule: BatchSchedule | None = None
    hmo: bool = Field(False, description="Licensed as an HMO (Knox-Keene): late-payment interest starts after 45 "
                      "working days instead of 30 (H&S 1371 / 1371.35).")
    silent_after_days: int = Field(35, ge=1, description="Flag the MCP as silent when no 835 arrived for more "
                                   "than this many days [practice: most MCPs remit weekly or bi-weekly].")


class McpBilling(_Config):
    """One MCP: its billing profile and fee schedules."""

    profile: BillingProfile
    fee_schedules: tuple[FeeSchedule, ...] = ()

    @model_validator(mode="after")
    def _schedules_do_not_overlap(self) -> McpBilling:
        ordered = sorted(self.fee_schedules, key=lambda s: s.effective_from)
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            if earlier.effective_to is None or earlier.effective_to >= later.effective_from:
                raise ValueError("fee schedules of one MCP overlap")
        return self

    def fee_schedule_on(self, day: date) -> FeeSchedule | None:
        """The schedule in force on a date of service, or None."""
        for schedule in self.fee_schedules:  # FeeSchedule.in_force_on, inlined: asked once per encounter
            if schedule.effective_from <= day and (schedule.effective_to is None or day <= schedule.effective_to):
                return schedule
        return None


class Submitter(_Config):
    """The hub as 837P submitter (1000A) and its interchange identity."""

    name: str
    id: str
    contact_name: str
    contact_phone: str = Field(pattern=r"^[0-9]{10}$")
    interchange: Party


class HubFeeTerm(_Config):
    """The hub's fee in one CBO contract between two dates (both inclusive; no end: still in force)."""

    percent: Decimal = Field(ge=0, le=100, decimal_places=4)
    effective_from: date
    effective_to: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> HubFeeTerm:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        return self


class CboContract(_Config):
    """What the hub's contract with a CBO says about payouts: the hub's fee, effective-dated."""

    fee_terms: tuple[HubFeeTerm, ...] = ()

    @model_validator(mode="after")
    def _terms_do_not_overlap(self) -> CboContract:
        ordered = sorted(self.fee_terms, key=lambda t: t.effective_from)
        for earlier, later in zip(ordered, ordered[1:], strict=False):
            if earlier.effective_to is None or earlier.effective_to >= later.effective_from:
                raise ValueError("fee terms of one CBO contract overlap")
        return self


class BillingConfiguration(_Config):
    """Everything the claims service needs to price and bill: hub, CBOs, MCPs, and the CBO contracts."""

    hub: BillingIdentity
    submitter: Submitter
    cbos: dict[str, BillingIdentity] = Field(default_factory=dict, description="By CBO organization id.")
    mcps: dict[str, McpBilling]
    cbo_contracts: dict[str, CboContract] = Field(
        default_factory=dict, description="By CBO organization id: the hub's fee terms for payouts.")

    @field_validator("mcps")
    @classmethod
    def _known_plans(cls, value: dict[str, McpBilling]) -> dict[str, McpBilling]:
        for code in value:
            plan_by_code(code)  # raises ValueError for a plan CalHub does not know
        return value

    def mcp(self, code: str) -> McpBilling | None:
        """The billing setup of an MCP, or None if CalHub does not bill it."""
        return self.mcps.get(code)

    def billing_identity(self, mcp_code: str, cbo_organization_id: str) -> BillingIdentity | None:
        """Who bills this MCP for this CBO's services (the hub or the CBO), or None if not configured."""
        billing = self.mcps.get(mcp_code)
        if billing is None:
            return None
        if billing.profile.billing_provider is BillingProviderRole.HUB:
            return self.hub
        return self.cbos.get(cbo_organization_id)

    def mcp_for_sender(self, sender_id: str) -> str | None:
        """The MCP whose interchange id (ISA06 of the files it sends) is `sender_id`, or None."""
        for code, billing in self.mcps.items():
            if billing.profile.interchange.id == sender_id.strip():
                return code
        return None


def load_configuration(data: dict[str, Any]) -> BillingConfiguration:
    """Validate parsed YAML/JSON; raises pydantic.ValidationError naming the bad field."""
    return BillingConfiguration.model_validate(data)
