"""The study app: Streamlit pages, SQLite storage, the assignment policy (no torch here)."""
