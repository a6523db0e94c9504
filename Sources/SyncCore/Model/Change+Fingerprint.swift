extension Change {
    /// A 64-bit digest of what this change says (table, row, operation, value, base seq) and of its
    /// clock reading, not of who says it. The server keeps the digests of a replica's recent pushes, so
    /// that a push re-using counters can be told apart: the same changes again (a retry after a lost
    /// answer) or different ones (a terminal restored from an older copy of its file; invariant 10,
    /// SPEC 7.8). The clock is in: a restored file re-stamps (SPEC 7.7) what its lost future had
    /// re-stamped and stored, at another time; taken for a replay, its own copy would carry a version
    /// the server never stored, and beat the server's forever. A late copy of a request refused for
    /// drift, arriving after the re-stamped one was stored, now costs a new replica id (a false alarm).
    public var fingerprint: UInt64 {
        var writer = ByteWriter(capacity: 64)
        writer.byte(table.rawValue)
        writer.rowID(row)
        switch operation {
        case .write(let column, let value, let baseSeq):
            writer.byte(column.rawValue)
            writer.value(value)
            writer.varint(baseSeq)
        case .delete: writer.byte(FrameCodec.deleteOp)
        case .erase: writer.byte(FrameCodec.eraseOp)
        }
        writer.varint(version.hlc.rawValue)
        // FNV-1a: not cryptographic, and need not be; a terminal can only confuse itself.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in writer.bytes {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}
