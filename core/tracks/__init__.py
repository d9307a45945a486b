"""Tracks in memory: the ``Track`` type, geodesy, cleaning, statistics and the file formats.
Pure computation: nothing here touches the database."""
