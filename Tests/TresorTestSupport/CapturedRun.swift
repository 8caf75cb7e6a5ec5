import Foundation

/// Runs `executable` with `arguments` to its end and returns its exit status and standard output
/// (standard input is empty, standard error is dropped): what tests need to ask a tool (bash,
/// Chromium, `pyenv which`, `script`) for one answer. `environment` replaces the inherited one.
public func runCapturingOutput(
    _ executable: String, _ arguments: [String], environment: [String: String]? = nil
) throws -> (code: Int32, out: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let environment { p.environment = environment }
    p.standardInput = FileHandle.nullDevice
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle.nullDevice
    try p.run()
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: data, as: UTF8.self))
}
