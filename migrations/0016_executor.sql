-- Where a long job's batches were computed (issue 28): in this process, a Dask LocalCluster of N
-- worker processes on 127.0.0.1, or an existing Dask scheduler. The process holding the store is
-- the only writer whatever the executor; these columns say how the rows were computed.

ALTER TABLE runs ADD COLUMN executor VARCHAR;
ALTER TABLE runs ADD COLUMN workers INTEGER;

COMMENT ON COLUMN runs.executor IS 'Where the batches were computed: local (in this process), processes:N (a Dask LocalCluster on 127.0.0.1) or the Dask scheduler address (tcp:// or tls://); NULL for runs before migration 0016. A resumed run records the executor of its last call';
COMMENT ON COLUMN runs.workers IS 'Worker processes that computed batches (count; 1 for local); NULL for runs before migration 0016';
