enum _PlaceholderSyncClient {}
