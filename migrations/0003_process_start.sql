-- When the process `pid` started (epoch seconds, from /proc; NULL where unknown). A live process
-- with that pid but another start time is the pid reused by an unrelated process, so the run or
-- ingest that recorded it is dead (matstore/recovery.py).
ALTER TABLE runs ADD COLUMN pid_started DOUBLE;
ALTER TABLE ingests ADD COLUMN pid_started DOUBLE;
