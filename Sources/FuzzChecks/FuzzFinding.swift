/// A property a harness checks did not hold. Harnesses abort on it, so libFuzzer keeps the input;
/// the regression test fails on it. Descriptions name structure only, never values.
package struct FuzzFinding: Error, CustomStringConvertible {
    package let description: String

    package init(_ description: String) {
        self.description = description
    }
}
