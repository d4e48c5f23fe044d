"""Code values of 005010X279A1 the eligibility service relies on, with the plain words staff read.

Kept as data (one table per element) so a code list revision is a table edit, not a code change. The lists
are those of the X279A1 TR3 for the elements named; codes CalHub never receives may be missing where noted.
"""

from __future__ import annotations

from dataclasses import dataclass

IMPLEMENTATION = "005010X279A1"
INQUIRY_FUNCTIONAL_CODE = "HS"  # GS01 of a 270
RESPONSE_FUNCTIONAL_CODE = "HB"  # GS01 of a 271

# HL03 hierarchical level codes of the 270/271 and the loop each one opens.
LEVEL_INFORMATION_SOURCE = "20"  # loop 2000A: the payer (the MCP)
LEVEL_INFORMATION_RECEIVER = "21"  # loop 2000B: the provider asking (the hub)
LEVEL_SUBSCRIBER = "22"  # loop 2000C: the member (every Medi-Cal member is a subscriber)
LEVEL_DEPENDENT = "23"  # loop 2000D: not used by Medi-Cal, accepted when present
LEVEL_LOOPS = {LEVEL_INFORMATION_SOURCE: "2000A", LEVEL_INFORMATION_RECEIVER: "2000B",
               LEVEL_SUBSCRIBER: "2000C", LEVEL_DEPENDENT: "2000D"}
LEVEL_PARENTS = {LEVEL_INFORMATION_SOURCE: None, LEVEL_INFORMATION_RECEIVER: LEVEL_INFORMATION_SOURCE,
                 LEVEL_SUBSCRIBER: LEVEL_INFORMATION_RECEIVER, LEVEL_DEPENDENT: LEVEL_SUBSCRIBER}

# BHT02: 13 request (270), 11 response (271), 01 cancellation (270 only).
BHT02_INQUIRY = frozenset({"01", "13"})
BHT02_RESPONSE = frozenset({"11"})

# NM101 entity identifier codes allowed per loop (X279A1 2100A/2100B/2100C).
NM101_SOURCE = frozenset({"2B", "36", "GP", "P5", "PR"})
NM101_RECEIVER = frozenset({"1P", "2B", "36", "80", "FA", "GP", "P5", "PR"})
NM101_SUBSCRIBER = frozenset({"IL"})
# NM108 identification code qualifiers per loop.
NM108_SOURCE = frozenset({"24", "46", "FI", "NI", "PI", "XV", "XX"})
NM108_RECEIVER = frozenset({"24", "34", "FI", "PI", "PP", "SV", "XV", "XX"})
NM108_SUBSCRIBER = frozenset({"II", "MI"})

# TRN01: 1 = current transaction trace number (270), 2 = referenced transaction trace number (271).
TRN_CURRENT = "1"
TRN_REFERENCED = "2"

# DMG03 gender codes.
GENDER_CODES = frozenset({"F", "M", "U"})

# DTP01 qualifiers of 2100C (270 and 271) and 2110C (271).
DTP_SUBSCRIBER_270 = frozenset({"291"})
DTP_2100C_271 = frozenset({"096", "102", "152", "291", "307", "318", "340", "341", "342", "343", "346", "347",
                           "356", "357", "382", "435", "442", "458", "472", "539", "540", "636", "771"})
# 2110C has no 347 (plan end): an end date inside a benefit loop is 349 (benefit end) or 357 (eligibility end).
DTP_2110C_271 = frozenset({"096", "193", "194", "198", "290", "291", "292", "295", "304", "307", "318", "346",
                           "348", "349", "356", "357", "435", "472", "636", "771"})
DTP_BEGIN = ("346", "356", "348", "193")  # plan / eligibility / benefit begin, period start
DTP_END = ("347", "357", "349", "194")  # plan / eligibility / benefit end, period end
DTP_PERIOD = ("291", "307", "292")  # plan, eligibility, benefit: RD8 ranges carry both ends
DATE_FORMATS = frozenset({"D8", "RD8"})

# EB01 eligibility or benefit information codes (X279A1 2110C EB01), in words for people.
EB01 = {
    "1": "Active coverage", "2": "Active - full risk capitation", "3": "Active - services capitated",
    "4": "Active - services capitated to primary care physician", "5": "Active - pending investigation",
    "6": "Inactive", "7": "Inactive - pending eligibility update", "8": "Inactive - pending investigation",
    "A": "Co-insurance", "B": "Co-payment", "C": "Deductible", "CB": "Coverage basis",
    "D": "Benefit description", "E": "Exclusions", "F": "Limitations", "G": "Out of pocket (stop loss)",
    "H": "Unlimited", "I": "Non-covered", "J": "Cost containment", "K": "Reserve", "L": "Primary care provider",
    "M": "Pre-existing condition", "MC": "Managed care coordinator",
    "N": "Services restricted to following provider", "O": "Not deemed a medical necessity",
    "P": "Benefit disclaimer", "Q": "Second surgical opinion required", "R": "Other or additional payor",
    "S": "Prior year(s) history", "T": "Card(s) reported lost/stolen",
    "U": "Contact following entity for eligibility or benefit information", "V": "Cannot process",
    "W": "Other source of data", "X": "Health care facility", "Y": "Spend down",
}
EB01_ACTIVE = frozenset({"1", "2", "3", "4", "5"})
EB01_INACTIVE = frozenset({"6", "7", "8"})
EB01_OTHER_PAYOR = "R"

# EB04 insurance type codes (X279A1).
INSURANCE_TYPES = frozenset({
    "12", "13", "14", "15", "16", "41", "42", "43", "47", "AP", "C1", "CO", "CP", "D", "DB", "EP", "FF", "GP",
    "HM", "HN", "HS", "IN", "IP", "LC", "LD", "LI", "LT", "MA", "MB", "MC", "MH", "MI", "MP", "OT", "PE", "PL",
    "PP", "PR", "PS", "QM", "RP", "SP", "TF", "WC", "WU",
})

# EQ01 / EB03 service type codes (X12 5010 code source 1365, as used by X279A1). The numeric range is accepted
# whole: refusing a valid code would be worse for an analyst than letting a retired one through.
SERVICE_TYPES = frozenset(
    [str(n) for n in range(1, 100)]
    + ["A0", "A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "AA", "AB", "AC", "AD", "AE", "AF", "AG",
       "AH", "AI", "AJ", "AK", "AL", "AM", "AN", "AO", "AQ", "AR", "B1", "B2", "B3", "BA", "BB", "BC", "BD", "BE",
       "BF", "BG", "BH", "BI", "BJ", "BK", "BL", "BM", "BN", "BP", "BQ", "BR", "BS", "BT", "BU", "BV", "BW",
       "BX", "BY", "BZ", "C1", "CA", "CB", "CC", "CD", "CE", "CF", "CG", "CH", "CI", "CJ", "CK", "CL", "CM", "CN",
       "CO", "CP", "CQ", "DG", "DM", "DS", "GF", "GN", "GY", "IC", "MH", "NI", "ON", "PT", "PU", "RN", "RT",
       "TC", "TN", "UC"]
)
SERVICE_TYPE_PLAN_COVERAGE = "30"  # Health benefit plan coverage: the question CalHub asks
SERVICE_TYPE_HOSPICE = "45"

# AAA04 follow-up action codes.
FOLLOW_UP = {
    "C": "Correct the inquiry and send it again",
    "N": "Do not send it again",
    "P": "Send the original inquiry again",
    "R": "It may be sent again",
    "S": "Do not send it again; the plan asked a third party",
    "W": "Wait 30 days and send it again",
    "X": "Wait 10 days and send it again",
    "Y": "Do not send it again; the plan hands it to a third party",
}
AAA01_VALUES = frozenset({"Y", "N"})


@dataclass(frozen=True, slots=True)
class RejectReason:
    """An AAA03 reject reason: the TR3's words, the plain reason for staff, and whether CalHub asks again."""

    code: str
    description: str
    plain: str
    retry: bool = False


_REASONS = (
    RejectReason("04", "Authorized quantity exceeded",
                 "The plan refused: too many inquiries were sent; CalHub will send them again later", True),
    RejectReason("15", "Required application data missing",
                 "The inquiry lacked data the plan needs: check the member's name, birth date and CIN"),
    RejectReason("33", "Input errors", "The plan could not read the inquiry: it will be corrected and sent again"),
    RejectReason("35", "Out of network", "The plan says the hub is out of network for this member"),
    RejectReason("41", "Authorization/access restrictions",
                 "The plan does not let the hub ask about this member: check the hub's trading partner setup"),
    RejectReason("42", "Unable to respond at current time",
                 "The plan's system could not answer now: CalHub will ask again in the next batch", True),
    RejectReason("43", "Invalid/missing provider identification",
                 "The plan does not recognize the hub's NPI: check the hub's enrollment with the plan"),
    RejectReason("44", "Invalid/missing provider name", "The plan does not recognize the hub's name"),
    RejectReason("45", "Invalid/missing provider specialty", "The plan rejected the provider specialty sent"),
    RejectReason("46", "Invalid/missing provider phone number", "The plan rejected the provider phone number sent"),
    RejectReason("47", "Invalid/missing provider state", "The plan rejected the provider state sent"),
    RejectReason("48", "Invalid/missing referring provider identification number",
                 "The plan rejected the referring provider's identifier"),
    RejectReason("49", "Provider is not primary care physician",
                 "The plan answers this only to the member's primary care provider"),
    RejectReason("50", "Provider ineligible for inquiries", "The plan does not accept inquiries from the hub"),
    RejectReason("51", "Provider not on file", "The plan has no record of the hub as a provider"),
    RejectReason("52", "Service dates not within provider plan enrollment",
                 "The date asked about is outside the hub's contract with the plan"),
    RejectReason("53", "Inquired benefit inconsistent with provider type",
                 "The plan will not answer this benefit question for the hub's provider type"),
    RejectReason("54", "Inappropriate product/service ID qualifier", "The plan rejected the service type asked"),
    RejectReason("55", "Inappropriate product/service ID", "The plan rejected the service type asked"),
    RejectReason("56", "Inappropriate date", "The plan rejected the date asked about"),
    RejectReason("57", "Invalid/missing date(s) of service", "The plan rejected the date asked about"),
    RejectReason("58", "Invalid/missing date-of-birth", "The member's birth date is missing or not valid"),
    RejectReason("60", "Date of birth follows date(s) of service",
                 "The member's birth date on file is after the date asked about: correct the birth date"),
    RejectReason("61", "Date of death precedes date(s) of service",
                 "The plan records the member as deceased before the date asked about"),
    RejectReason("62", "Date of service not within allowable inquiry period",
                 "The plan does not answer for that date (too far in the past or future)"),
    RejectReason("63", "Date of service in future", "The plan does not answer for a future date"),
    RejectReason("69", "Inconsistent with patient's age", "The plan says the service does not fit the member's age"),
    RejectReason("70", "Inconsistent with patient's gender",
                 "The plan says the service does not fit the member's gender"),
    RejectReason("71", "Patient birth date does not match that for the patient on the database",
                 "The birth date does not match the plan's record: confirm it with the member"),
    RejectReason("72", "Invalid/missing subscriber/insured ID",
                 "The plan does not recognize the member ID (CIN): check the CIN"),
    RejectReason("73", "Invalid/missing subscriber/insured name",
                 "The name does not match the plan's record: confirm the spelling with the member"),
    RejectReason("74", "Invalid/missing subscriber/insured gender code", "The plan rejected the member's gender"),
    RejectReason("75", "Subscriber/insured not found",
                 "The plan has no member with this CIN: confirm which plan the member is in"),
    RejectReason("76", "Duplicate subscriber/insured ID number",
                 "The plan holds more than one record for this CIN: the plan must resolve it"),
    RejectReason("78", "Subscriber/insured not in group/plan identified",
                 "The member is not in this plan: confirm which plan the member is in"),
    RejectReason("79", "Invalid participant identification",
                 "The plan did not recognize the sender or receiver ids: check the trading partner setup"),
    RejectReason("97", "Invalid or missing provider address", "The plan rejected the hub's address"),
    RejectReason("98", "Experimental service or procedure", "The plan considers the service experimental"),
    RejectReason("AA", "Authorization number not found", "The plan did not find the authorization number"),
    RejectReason("AE", "Requires primary care physician authorization",
                 "The plan needs the primary care provider's authorization"),
    RejectReason("AF", "Invalid/missing diagnosis code(s)", "The plan rejected the diagnosis codes"),
    RejectReason("AG", "Invalid/missing procedure code(s)", "The plan rejected the procedure codes"),
    RejectReason("AO", "Additional patient condition information required",
                 "The plan needs more about the member's condition"),
    RejectReason("CI", "Certification information does not match patient",
                 "The plan's certification does not match the member"),
    RejectReason("E8", "Requires medical review", "The plan needs a medical review first"),
    RejectReason("IA", "Invalid authorization number format", "The authorization number format is not valid"),
    RejectReason("MA", "Missing authorization", "The plan needs an authorization"),
    RejectReason("T4", "Payer name or identifier missing",
                 "The inquiry did not name the plan correctly: check the plan's payer id"),
)
REJECT_REASONS: dict[str, RejectReason] = {reason.code: reason for reason in _REASONS}

# Which AAA03 codes each loop may carry (X279A1 271 AAA segments).
AAA03_BY_LOOP: dict[str, frozenset[str]] = {
    "2000A": frozenset({"04", "41", "42", "79", "80", "T4"}),
    "2100A": frozenset({"04", "41", "42", "79", "80", "T4"}),
    "2100B": frozenset({"15", "41", "43", "44", "45", "46", "47", "48", "50", "51", "79", "97", "T4"}),
    "2100C": frozenset({"15", "35", "42", "43", "45", "47", "48", "49", "51", "52", "56", "57", "58", "60", "61",
                        "62", "63", "71", "72", "73", "74", "75", "76", "78"}),
    "2110C": frozenset({"15", "33", "52", "53", "54", "55", "56", "57", "60", "61", "62", "63", "69", "70", "98",
                        "AA", "AE", "AF", "AG", "AO", "CI", "E8", "IA", "MA"}),
}
# 80 (No response received - transaction terminated) appears in 2100A for clearinghouse timeouts.
REJECT_REASONS.setdefault("80", RejectReason("80", "No response received - transaction terminated",
                                             "The plan did not answer in time: CalHub will ask again", True))


def reject_reason(code: str) -> RejectReason:
    """The reject reason for an AAA03 code; an unknown code gets a generic reason naming the code."""
    known = REJECT_REASONS.get(code)
    if known is not None:
        return known
    return RejectReason(code, "Unknown reject reason", f"The plan rejected the inquiry (reason code {code})")
