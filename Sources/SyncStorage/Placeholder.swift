enum _PlaceholderSyncStorage {}
