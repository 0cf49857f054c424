"""``epx report``: a sweep's results as one self-contained HTML page (``build``), gathered by
``study`` into ``sections`` with embedded ``figures``; also logged to W&B as a report artifact."""
