//! PVE access control: the merge of the backup with this host and the applier.
