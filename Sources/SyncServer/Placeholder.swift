enum _PlaceholderSyncServer {}
