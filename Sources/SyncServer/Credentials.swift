import Crypto
import Foundation

/// Device tokens and enrollment codes. The server stores only their SHA-256.
public enum Credentials {
    /// `cs1_` and 32 random bytes in base64url.
    public static func makeToken<G: RandomNumberGenerator>(using generator: inout G) -> String {
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let base64 = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return "cs1_" + base64
    }

    /// Twelve Crockford base32 characters as `XXXX-XXXX-XXXX` (60 random bits): easy to read out and type.
    public static func makeEnrollmentCode<G: RandomNumberGenerator>(using generator: inout G) -> String {
        let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
        let characters = (0..<12).map { _ in alphabet[Int.random(in: 0..<32, using: &generator)] }
        return [characters[0..<4], characters[4..<8], characters[8..<12]].map { String($0) }.joined(separator: "-")
    }

    /// Codes are compared case-insensitively, without dashes or spaces, with the usual misreadings folded.
    public static func normalizedCode(_ code: String) -> String {
        code.uppercased().filter { $0 != "-" && $0 != " " }
            .map { $0 == "O" ? "0" : ($0 == "I" || $0 == "L") ? "1" : $0 }
            .map(String.init).joined()
    }

    /// Lowercase hex SHA-256 of the UTF-8 text.
    public static func hash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
