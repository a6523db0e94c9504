import ArgumentParser
import Foundation
import SyncClient
import SyncCore

extension TerminalCommand {
    struct EnquiryCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "enquiry", abstract: "Take and follow up patient enquiries (offline).",
            subcommands: [Add.self, Update.self, Note.self, List.self, Show.self, Erase.self])

        struct Add: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Record a new enquiry; prints its id.")
            @OptionGroup var replica: ReplicaOption
            @Option(help: "The patient's name.") var name: String
            @Option(help: "Phone number.") var phone: String?
            @Option(help: "Email address.") var email: String?
            @Option(help: "What it is about, e.g. sciatica.") var topic: String?
            @Option(help: "The message as given.") var message: String?
            @Option(help: "phone, email or either.") var preferredContact: String?
            @Flag(inversion: .prefixedNo, help: "Whether the patient consents to be contacted.") var consent = true
            @OptionGroup var output: JSONFlag

            func validate() throws {
                if phone == nil && email == nil { throw ValidationError("give --phone or --email so reception can reply") }
                if let preferredContact, !Schema.contactMethods.contains(preferredContact) {
                    throw ValidationError("--preferred-contact must be one of \(Schema.contactMethods.joined(separator: ", "))")
                }
            }

            func run() throws {
                let id = try cliErrors {
                    try replica.open().enquiries.add(NewEnquiry(
                        name: name, phone: phone, email: email, topic: topic, message: message,
                        preferredContact: preferredContact, consentToContact: consent))
                }
                if output.json { try Output.json(["id": id]) } else { print(id) }
            }
        }

        struct Update: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Change an enquiry's status, assignee or follow-up date.")
            @OptionGroup var replica: ReplicaOption
            @Argument(help: "The enquiry id.") var id: String
            @Option(help: "new, contacted, booked, closed or spam.") var status: String?
            @Option(help: "Who follows it up.") var assignedTo: String?
            @Option(help: "Follow-up date, YYYY-MM-DD.") var followUpOn: String?
            @OptionGroup var output: JSONFlag

            func validate() throws {
                if status == nil && assignedTo == nil && followUpOn == nil { throw ValidationError("nothing to change: give --status, --assigned-to or --follow-up-on") }
                if let status, !Schema.enquiryStatuses.contains(status) {
                    throw ValidationError("--status must be one of \(Schema.enquiryStatuses.joined(separator: ", "))")
                }
            }

            func run() throws {
                let replica = try replica.open()
                try cliErrors { try replica.enquiries.update(id, status: status, assignedTo: assignedTo, followUpOn: followUpOn) }
                if output.json { try Output.json(try replica.enquiries.get(id)) } else { print("enquiry \(id) updated") }
            }
        }

        struct Note: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Add a note to an enquiry (notes never conflict).")
            @OptionGroup var replica: ReplicaOption
            @Argument(help: "The enquiry id.") var id: String
            @Argument(help: "The note.") var text: String
            @Option(help: "Who wrote it.") var author: String?
            @OptionGroup var output: JSONFlag

            func run() throws {
                let note = try cliErrors { try replica.open().enquiries.addNote(to: id, body: text, author: author) }
                if output.json { try Output.json(["id": note]) } else { print(note) }
            }
        }

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List this branch's enquiries, newest first.")
            @OptionGroup var replica: ReplicaOption
            @Option(help: "Only this status.") var status: String?
            @OptionGroup var output: JSONFlag

            func run() throws {
                let enquiries = try replica.open().enquiries.list(status: status)
                if output.json { try Output.json(enquiries) } else if enquiries.isEmpty { print("no enquiries") } else {
                    print(Output.table(["ID", "CREATED", "NAME", "TOPIC", "STATUS"], enquiries.map {
                        [$0.id, $0.createdAt, $0.name, $0.topic ?? "", $0.status]
                    }))
                }
            }
        }

        struct Show: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Show one enquiry with its notes.")
            @OptionGroup var replica: ReplicaOption
            @Argument(help: "The enquiry id.") var id: String
            @OptionGroup var output: JSONFlag

            struct Shown: Encodable {
                var enquiry: Enquiry
                var notes: [EnquiryNote]
            }

            func run() throws {
                let replica = try replica.open()
                guard let enquiry = try replica.enquiries.get(id) else { throw CLIError("no enquiry \(id) on this terminal") }
                let notes = try replica.enquiries.notes(of: id)
                if output.json { try Output.json(Shown(enquiry: enquiry, notes: notes)); return }
                let fields: [(String, String?)] = [
                    ("id", enquiry.id), ("branch", enquiry.branch), ("created", enquiry.createdAt), ("name", enquiry.name),
                    ("phone", enquiry.phone), ("email", enquiry.email), ("topic", enquiry.topic), ("message", enquiry.message),
                    ("contact by", enquiry.preferredContact), ("consent", enquiry.consentToContact ? "yes" : "no"),
                    ("status", enquiry.status), ("assigned to", enquiry.assignedTo), ("follow up", enquiry.followUpOn),
                ]
                for (label, value) in fields { print("\(label.padding(toLength: 12, withPad: " ", startingAt: 0)) \(value ?? "-")") }
                for note in notes { print("note         \(note.createdAt) \(note.author ?? ""): \(note.body)") }
            }
        }

        struct Erase: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Erase an enquiry, its notes and conflicts, here and after sync everywhere (UK GDPR erasure).")
            @OptionGroup var replica: ReplicaOption
            @Argument(help: "The enquiry id.") var id: String
            @OptionGroup var output: JSONFlag

            func run() throws {
                try cliErrors { try replica.open().enquiries.erase(id) }
                if output.json { try Output.json(["erased": id]) } else { print("enquiry \(id) erased here; sync to erase it everywhere") }
            }
        }
    }

    struct ContentCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "content", abstract: "Read the clinic's content (offline).", subcommands: [List.self, Show.self])

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List content items.")
            @OptionGroup var replica: ReplicaOption
            @Option(help: "Only this kind (page, treatment, condition, testimonial, practitioner, notice).") var kind: String?
            @OptionGroup var output: JSONFlag

            func run() throws {
                let items = try replica.open().content.list(kind: kind)
                if output.json { try Output.json(items) } else if items.isEmpty { print("no content yet; sync first") } else {
                    print(Output.table(["SLUG", "KIND", "TITLE", "BRANCH"], items.map { [$0.slug, $0.kind, $0.title, $0.branch ?? "all"] }))
                }
            }
        }

        struct Show: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Print one content item.")
            @OptionGroup var replica: ReplicaOption
            @Argument(help: "Its slug, e.g. manual-therapy.") var slug: String
            @OptionGroup var output: JSONFlag

            func run() throws {
                guard let item = try replica.open().content.item(slug: slug) else { throw CLIError("no content '\(slug)' on this terminal") }
                if output.json { try Output.json(item); return }
                print("# \(item.title)\n")
                if let summary = item.summary { print("\(summary)\n") }
                print(item.body ?? "")
            }
        }
    }

    struct ConflictsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "conflicts", abstract: "List and resolve conflicts.", subcommands: [List.self, Resolve.self])

        struct List: ParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List open conflicts (all with --all).")
            @OptionGroup var replica: ReplicaOption
            @Flag(help: "Include resolved ones.") var all = false
            @OptionGroup var output: JSONFlag

            func run() throws {
                let conflicts = try replica.open().conflicts.list(includeResolved: all)
                if output.json { try Output.json(conflicts) } else if conflicts.isEmpty { print("no \(all ? "" : "open ")conflicts") } else {
                    print(Output.table(["ID", "ROW", "COLUMN", "KEPT", "ALSO WRITTEN", "STATE"], ConflictsCommand.rows(conflicts)))
                }
            }
        }

        /// The table's rows: a resolved conflict shows what was kept, not the winner of the original race.
        static func rows(_ conflicts: [Conflict]) -> [[String]] {
            conflicts.map {
                [String($0.id.prefix(8)), "\($0.table) \($0.row)", $0.column, $0.rowDeleted ? "(row deleted)" : $0.keptValue ?? "null",
                 $0.alsoWrittenValue ?? "null", $0.resolved ? "resolved" : "open"]
            }
        }

        struct Resolve: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Resolve a conflict by writing the value to keep.",
                discussion: "--keep mine keeps what this terminal wrote, theirs the other value; anything else is written as the new value.")
            @OptionGroup var replica: ReplicaOption
            @Argument(help: "The conflict id (a prefix is enough).") var id: String
            @Option(help: "mine, theirs, or a value.") var keep: String
            @OptionGroup var output: JSONFlag

            func run() throws {
                let resolution: Conflicts.Resolution = keep == "mine" ? .mine : keep == "theirs" ? .theirs : .value(.text(keep))
                try cliErrors { try replica.open().conflicts.resolve(id, keep: resolution) }
                if output.json { try Output.json(["resolved": id, "keep": keep]) } else { print("conflict \(id) resolved here; sync to resolve it everywhere") }
            }
        }
    }
}
