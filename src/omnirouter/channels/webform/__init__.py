"""Web forms: contact and support forms posted from the customer's browser.

Public endpoints with no signature; ``origin.py`` holds the one check (the page's origin
against an optional allow-list), ``normalize.py`` the parsing and normalization.
"""
