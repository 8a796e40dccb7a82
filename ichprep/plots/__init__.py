"""Pictures a person would rather look at than read: reports, contact sheets, training curves."""
