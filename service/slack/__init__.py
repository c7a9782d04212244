"""The Slack bot: Events API on `POST /slack/events`, or Socket Mode (`notesqa slack`)."""
