"""The rule language: files -> typed models -> indexed rule set -> decisions."""
