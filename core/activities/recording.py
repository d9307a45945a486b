"""How a device records an activity: one GPS fix every few seconds, more often on a ride."""

GPS_INTERVAL_S = {"run": 5.0, "ride": 3.0}
