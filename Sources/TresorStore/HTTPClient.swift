internal import CCurl
import Foundation
import TresorCore

/// The answer to one HTTP request: status, headers (names lowercased) and body.
struct HTTPResponse: Sendable {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
}

/// A request that never got an HTTP answer: connection refused or dropped, timeout, DNS.
/// Always worth retrying.
struct HTTPTransportError: Error, Sendable {
    var message: String
}

/// A deliberately narrow, synchronous HTTP/1.1 client over libcurl: what S3 needs, nothing more.
///
/// Why libcurl and not FoundationNetworking's URLSession: URLSession on Linux is asynchronous
/// under the hood (a delegate queue per session), copies request bodies into `Data`, and its
/// connection reuse across threads is opaque. libcurl's easy interface blocks the calling thread,
/// which is exactly the `Store` contract (store I/O runs on dedicated pipeline threads), sends the
/// body straight from the caller's buffer through a read callback, and keeps connections alive per
/// handle. It is a system library (Debian `libcurl4-openssl-dev`), so it costs no build time.
///
/// Handles live in a pool: a thread takes one for a request and gives it back, so at most as many
/// handles (and keep-alive connections) exist as requests ever ran at once. A handle is reset
/// (`curl_easy_reset`, which keeps its live connection) before each request.
final class HTTPClient: @unchecked Sendable {
    private let lock = NSLock()
    private var idle: [UnsafeMutableRawPointer] = []
    /// Seconds to establish a connection, and the stall after which a transfer is given up.
    let connectTimeout: Int
    let stallTimeout: Int

    private static let globalInit: Bool = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT)) == CURLE_OK
    }()

    init(connectTimeout: Int = 10, stallTimeout: Int = 60) {
        precondition(Self.globalInit, "libcurl failed to initialise")
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
    }

    deinit {
        for h in idle { curl_easy_cleanup(h) }
    }

    private func checkout() -> UnsafeMutableRawPointer {
        lock.lock()
        let h = idle.popLast()
        lock.unlock()
        if let h { return h }
        guard let fresh = curl_easy_init() else { fatalError("curl_easy_init failed") }
        return fresh
    }

    private func giveBack(_ h: UnsafeMutableRawPointer) {
        lock.lock()
        idle.append(h)
        lock.unlock()
    }

    /// Sends one request and waits for the whole answer. `body` is read during the call only.
    /// `expectedBodySize` pre-sizes the response buffer (ranged reads know their size).
    func perform(
        method: String, url: String, headers: [(String, String)], body: UnsafeRawBufferPointer?,
        expectedBodySize: Int = 0
    ) throws -> HTTPResponse {
        let handle = checkout()
        var healthy = true
        defer {
            if healthy {
                giveBack(handle)
            } else {
                curl_easy_cleanup(handle)
            }
        }
        curl_easy_reset(handle)
        let exchange = Exchange(body: body)
        exchange.response.reserveCapacity(expectedBodySize)
        let context = Unmanaged.passUnretained(exchange).toOpaque()

        var list: UnsafeMutablePointer<curl_slist>? = nil
        // "Expect:" stops curl from waiting for a 100-continue before sending the body.
        for line in headers.map({ "\($0.0): \($0.1)" }) + ["Expect:"] {
            list = curl_slist_append(list, line)
        }
        defer { curl_slist_free_all(list) }

        _ = tresor_curl_setopt_string(handle, CURLOPT_URL, url)
        _ = tresor_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = tresor_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, connectTimeout)
        _ = tresor_curl_setopt_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1)
        _ = tresor_curl_setopt_long(handle, CURLOPT_LOW_SPEED_TIME, stallTimeout)
        // Large socket reads and writes: at curl's defaults (16 KiB down, 64 KiB up) a 16 MiB
        // pack costs a thousand system calls and callbacks each way.
        _ = tresor_curl_setopt_long(handle, CURLOPT_BUFFERSIZE, 512 << 10)
        _ = tresor_curl_setopt_long(handle, CURLOPT_UPLOAD_BUFFERSIZE, 1 << 20)
        _ = tresor_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, list)
        _ = tresor_curl_setopt_callback(handle, CURLOPT_WRITEFUNCTION, writeCallback)
        _ = tresor_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context)
        _ = tresor_curl_setopt_callback(handle, CURLOPT_HEADERFUNCTION, headerCallback)
        _ = tresor_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context)
        switch method {
        case "GET":
            break
        case "HEAD":
            _ = tresor_curl_setopt_long(handle, CURLOPT_NOBODY, 1)
        case "PUT", "POST":
            _ = tresor_curl_setopt_long(handle, CURLOPT_UPLOAD, 1)
            _ = tresor_curl_setopt_off(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(body?.count ?? 0))
            _ = tresor_curl_setopt_callback(handle, CURLOPT_READFUNCTION, readCallback)
            _ = tresor_curl_setopt_pointer(handle, CURLOPT_READDATA, context)
            if method == "POST" { _ = tresor_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, "POST") }
        default:
            _ = tresor_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method)
        }
        let code = withExtendedLifetime(exchange) { curl_easy_perform(handle) }
        guard code == CURLE_OK else {
            healthy = false
            throw HTTPTransportError(message: String(cString: curl_easy_strerror(code)))
        }
        var status = 0
        _ = tresor_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: exchange.headers, body: exchange.response)
    }
}

/// The state one transfer's callbacks share.
private final class Exchange {
    let body: UnsafeRawBufferPointer?
    var sent = 0
    var response: [UInt8] = []
    var headers: [String: String] = [:]

    init(body: UnsafeRawBufferPointer?) { self.body = body }
}

private let writeCallback: tresor_curl_data_cb = { buffer, size, count, context in
    let exchange = Unmanaged<Exchange>.fromOpaque(context!).takeUnretainedValue()
    let n = size * count
    if n > 0, let buffer {
        exchange.response.append(contentsOf: UnsafeRawBufferPointer(start: buffer, count: n))
    }
    return n
}

private let readCallback: tresor_curl_data_cb = { buffer, size, count, context in
    let exchange = Unmanaged<Exchange>.fromOpaque(context!).takeUnretainedValue()
    guard let body = exchange.body, let buffer else { return 0 }
    let n = min(size * count, body.count - exchange.sent)
    if n > 0 {
        UnsafeMutableRawPointer(buffer).copyMemory(from: body.baseAddress! + exchange.sent, byteCount: n)
        exchange.sent += n
    }
    return n
}

private let headerCallback: tresor_curl_data_cb = { buffer, size, count, context in
    let exchange = Unmanaged<Exchange>.fromOpaque(context!).takeUnretainedValue()
    let n = size * count
    guard let buffer else { return n }
    let line = String(decoding: UnsafeRawBufferPointer(start: buffer, count: n), as: UTF8.self)
    if line.hasPrefix("HTTP/") {
        // A new response (after a 100 Continue or a redirect): forget earlier headers.
        exchange.headers = [:]
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
        let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
        exchange.headers[name] = value
        // Size the body buffer once instead of growing it while the body arrives.
        if name == "content-length", let n = Int(value), n > exchange.response.capacity, n < 1 << 30 {
            exchange.response.reserveCapacity(n)
        }
    }
    return n
}
