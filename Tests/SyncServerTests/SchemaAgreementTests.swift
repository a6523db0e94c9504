import Foundation
import GRDB
import SyncCore
import Testing
@testable import SyncServer

/// The replicated tables are described once in SyncCore (`Schema`: column ids, names, types, allowed
/// values) and once as SQL (SharedSchema). This proves the two agree, column by column, in the store as
/// migrated, so a column added to one and not the other cannot ship (issue 11, "one schema definition").
@Suite("Schema agreement")
struct SchemaAgreementTests {
    @Test(arguments: TableID.allCases)
    func theSQLTableMatchesItsDescription(_ table: TableID) async throws {
        let store = try SQLiteServerStore(writer: DatabaseQueue())
        let columns = try await store.writerForTools.read { db in
            try Row.fetchAll(db, sql: "SELECT name, type FROM pragma_table_info(?) ORDER BY cid", arguments: [table.name])
                .map { (name: $0["name"] as String, type: $0["type"] as String) }
        }
        try #require(columns.first?.name == "id", "\(table.name) starts with its id")
        let described = table.definition.columns
        #expect(columns.dropFirst().map(\.name) == described.map(\.name), "\(table.name): the SQL's columns, in order, are the description's")
        for (sql, column) in zip(columns.dropFirst(), described) {
            // ANY is SQLite's "no declared type".
            #expect(sql.type == (column.type == .any ? "" : column.type.rawValue), "\(table.name).\(column.name)")
        }
        for (index, column) in described.enumerated() {
            #expect(Int(column.id.rawValue) == index + 1, "\(table.name).\(column.name): column ids are positions, as column(_:) assumes")
            #expect(table.definition.column(named: column.name)?.id == column.id)
        }
        if let branch = table.definition.branchColumn {
            #expect(table.definition.column(branch)?.name == "branch", "\(table.name): the scope column is its branch")
        }
    }
}
