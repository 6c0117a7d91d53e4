-- Runs once, when the compose file's PostgreSQL volume is new: the warehouse's DuckLake catalog
-- gets a database of its own beside Dagster's (POSTGRES_DB).
CREATE DATABASE daena_lake;
