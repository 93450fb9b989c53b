"""Simulated shoppers answering a live worker's lists: experiments tested and shown end to end."""
