"""Pure rules of the eligibility service: enrollment spans, change detection, the eligibility rule engine, the
reading of 271 answers and the monthly re-check calendar."""
