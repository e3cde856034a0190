"""The voice-conversion stage types."""
