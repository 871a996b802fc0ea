CREATE TABLE movies (
    id serial PRIMARY KEY,
    title text NOT NULL,
    description text NOT NULL
);
