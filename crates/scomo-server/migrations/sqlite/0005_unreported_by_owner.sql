-- Finished batches not yet reported to their owner, indexed by owner.
--
-- Keep in step with ../postgres/0005_unreported_by_owner.sql.
--
-- Each node's worker polls them by owner prefix every second. Indexed by id
-- alone, a poll for one prefix walked the owner index over every batch the
-- prefix ever had (after a campaign over 100,000 devices, 100,000 `job:`
-- batches, each row read, under the write lock); this index holds only what
-- waits to be reported.
DROP INDEX command_batches_unreported;
CREATE INDEX command_batches_unreported ON command_batches (owner, id)
    WHERE finished_at IS NOT NULL AND reported_at IS NULL;
