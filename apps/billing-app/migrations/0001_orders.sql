CREATE TABLE orders (
    id serial PRIMARY KEY,
    user_id integer NOT NULL,
    number_of_items integer NOT NULL,
    total_amount numeric(12, 2) NOT NULL
);
