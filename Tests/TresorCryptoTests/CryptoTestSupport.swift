import TresorCore

/// Decodes a hex test vector; a typo in a vector is a bug in the test, so it traps.
func hexBytes(_ hex: String) -> [UInt8] {
    guard let bytes = Hex.decode(hex) else { fatalError("bad hex in test vector: \(hex)") }
    return bytes
}
