"""Cases: open, continue, reopen and thread; one timeline and context per customer."""
