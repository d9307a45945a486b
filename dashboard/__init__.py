"""The Streamlit dashboard: feed, activities, stats, uploads, live view, leaderboards."""
