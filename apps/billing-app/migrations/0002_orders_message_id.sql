-- The id the gateway gives each published order: a redelivered message
-- (its ack lost) is stored once. Orders published without one are NULL,
-- which never conflicts.
ALTER TABLE orders ADD COLUMN message_id text;
ALTER TABLE orders ADD CONSTRAINT orders_message_id_key UNIQUE (message_id);
