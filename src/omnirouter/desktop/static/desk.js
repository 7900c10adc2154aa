<!-- placeholder: written by the desktop UI work -->
