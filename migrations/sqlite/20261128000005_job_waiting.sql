-- The gauge refresher's question: since when has the oldest job of a state waited for its
-- next consumer (its conversion while queued, its email once finished and not yet claimed).
CREATE INDEX job_waiting ON job (state, published_at) WHERE notification = 'pending';
