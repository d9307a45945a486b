"""Distances on the Earth: the seed's haversine and an accurate vectorised track length.

``haversine`` is kept exactly as the system design gives it (a sphere of mean radius, in
kilometres). Track distances use the WGS-84 ellipsoid instead: for consecutive GPS fixes a
few metres apart, scaling the latitude and longitude steps by the meridional and
prime-vertical radii of curvature at the segment's mid-latitude agrees with the exact
geodesic to better than a part per million, while the sphere is off by up to 0.3%.
"""

from __future__ import annotations

import math

import numpy as np

EARTH_MEAN_RADIUS_KM = 6371.0
WGS84_A_M = 6378137.0
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)


def haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in kilometres on a sphere of mean radius (the seed's formula)."""
    phi1 = math.radians(lat1)
    phi2 = math.radians(lat2)
    delta_phi = math.radians(lat2 - lat1)
    delta_lambda = math.radians(lon2 - lon1)
    a = math.sin(delta_phi / 2.0) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(delta_lambda / 2.0) ** 2
    c = 2 * math.atan2(math.sqrt(a), math.sqrt(1 - a))
    return EARTH_MEAN_RADIUS_KM * c


def segment_lengths_m(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Ellipsoidal length in metres of each step between consecutive points (n-1 values)."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    if lat.size < 2:
        return np.zeros(0)
    phi = np.radians(lat)
    dphi = np.diff(phi)
    # Wrap the longitude step into [-pi, pi) so a track crossing the antimeridian stays short.
    dlam = (np.diff(np.radians(lon)) + np.pi) % (2 * np.pi) - np.pi
    phi_mid = phi[:-1] + 0.5 * dphi
    sin_mid = np.sin(phi_mid)
    w2 = 1.0 - WGS84_E2 * sin_mid * sin_mid
    w = np.sqrt(w2)
    prime_vertical = WGS84_A_M / w
    meridional = prime_vertical * (1.0 - WGS84_E2) / w2
    north = meridional * dphi
    east = prime_vertical * np.cos(phi_mid) * dlam
    return np.hypot(north, east)


def track_length_m(lat: np.ndarray, lon: np.ndarray) -> float:
    """Summed point-to-point ellipsoidal distance of a track, in metres."""
    return float(segment_lengths_m(lat, lon).sum())


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Ellipsoidal distance in metres between two nearby points (``segment_lengths_m`` for one step).

    Plain floats, no arrays: the cleaner and the live stats call it one point at a time.
    """
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    mid = phi1 + 0.5 * (phi2 - phi1)
    s = math.sin(mid)
    w2 = 1.0 - WGS84_E2 * s * s
    w = math.sqrt(w2)
    prime_vertical = WGS84_A_M / w
    meridional = prime_vertical * (1.0 - WGS84_E2) / w2
    dlam = (math.radians(lon2 - lon1) + math.pi) % (2 * math.pi) - math.pi
    return math.hypot(meridional * (phi2 - phi1), prime_vertical * math.cos(mid) * dlam)


def local_xy(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Metres east and north of the first fix on a local tangent plane."""
    lat0 = float(lat[0])
    phi = np.radians(lat0)
    w2 = 1.0 - WGS84_E2 * np.sin(phi) ** 2
    north_per_rad = WGS84_A_M * (1.0 - WGS84_E2) / w2 ** 1.5
    east_per_rad = WGS84_A_M / np.sqrt(w2) * np.cos(phi)
    return np.radians(lon - lon[0]) * east_per_rad, np.radians(lat - lat0) * north_per_rad
