"""Model files: the catalog, downloads from the Hub, files on this computer, what fits here."""
