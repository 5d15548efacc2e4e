"""The API service's own parts, above the moderator: serving on several processes (serving.py) and moderation in
child processes (offload.py). main.py is the app."""
