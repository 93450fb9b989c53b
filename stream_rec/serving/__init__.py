"""Online serving, without Kafka or Faust: a batch of raw event messages and the shoppers'
stored states in; state writes, deletions, lists and dead letters out (``batch.py``), and the
recommender that turns shopper states into re-ranked lists (``recommender.py``).
"""
