import Crypto
import Foundation
import SwiftASN1
import X509

/// A throwaway certificate authority made in the test (P-256 keys), and the PEM files a server reads.
struct TestCA: Sendable {
    let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
    let name: DistinguishedName
    let certificate: Certificate

    init(_ commonName: String = "ClinicSync Test CA") throws {
        let name = try DistinguishedName {
            OrganizationName("ClinicSync tests")
            CommonName(commonName)
        }
        self.name = name
        certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(86_400),
            issuer: name, subject: name,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: key)
    }

    var pem: String { get throws { try certificate.serializeAsPEM().pemString } }

    /// A server certificate for 127.0.0.1 and localhost with a fresh key, written as PEM files in `directory`.
    func issueServerCertificate(in directory: String, named: String = "server") throws -> ServerCertificate {
        let key = P256.Signing.PrivateKey()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(key.publicKey),
            notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(86_400),
            issuer: name, subject: try DistinguishedName { CommonName("localhost") },
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames([.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))])
            },
            issuerPrivateKey: self.key)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let certificatePath = "\(directory)/\(named).crt"
        let keyPath = "\(directory)/\(named).key"
        try certificate.serializeAsPEM().pemString.write(toFile: certificatePath, atomically: true, encoding: .utf8)
        try key.pemRepresentation.write(toFile: keyPath, atomically: true, encoding: .utf8)
        let spki = try certificate.publicKey.serializeAsPEM().derBytes
        return ServerCertificate(certificatePath: certificatePath, keyPath: keyPath, pin: Data(SHA256.hash(data: spki)).base64EncodedString())
    }
}

struct ServerCertificate: Sendable {
    let certificatePath: String
    let keyPath: String
    /// The base64 SHA-256 of its SubjectPublicKeyInfo, computed here independently of the code under test.
    let pin: String
}
