"""Core of the activity tracker: geometry, track statistics, storage, feed and the ML.

Nothing in this package imports Streamlit or websockets: the dashboard and the realtime
server are thin shells that call into it.
"""

__version__ = "0.1.0"
