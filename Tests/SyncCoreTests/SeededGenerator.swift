import SyncCore

/// Property tests print their seed; replay one with `SeededGenerator(seed:)`.
typealias SeededGenerator = SplitMix64
