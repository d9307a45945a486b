"""Gamification: badges and weekly streaks earned by athletes' activities (``badges``,
``rules``, ``awards``), read from a catalogue that is data (``badges.json``)."""
