/// Little-endian cursor over untrusted bytes. Every read is bounds-checked and throws a `FormatError`
/// naming the file and the field being read; nothing ever reads past `buffer`.
struct ByteReader {
    let buffer: UnsafeRawBufferPointer
    let file: String
    private(set) var offset: Int = 0

    init(_ buffer: UnsafeRawBufferPointer, file: String, offset: Int = 0) {
        self.buffer = buffer
        self.file = file
        self.offset = offset
    }

    var remaining: Int { buffer.count - offset }

    func fail(_ what: String) -> FormatError { FormatError(file: file, what) }

    /// Ensures `n` more bytes exist; `field` names what is being read.
    func need(_ n: Int, _ field: @autoclosure () -> String) throws {
        guard n >= 0, n <= remaining else {
            throw fail("truncated: \(field()) needs \(n) bytes at offset \(offset), only \(max(remaining, 0)) remain")
        }
    }

    mutating func skip(_ n: Int, _ field: @autoclosure () -> String) throws {
        try need(n, field())
        offset += n
    }

    mutating func seek(_ to: Int, _ field: @autoclosure () -> String) throws {
        guard to >= 0, to <= buffer.count else {
            throw fail("\(field()): offset \(to) outside the file (\(buffer.count) bytes)")
        }
        offset = to
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ field: @autoclosure () -> String) throws -> T {
        let n = MemoryLayout<T>.size
        try need(n, field())
        let v = buffer.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += n
        return T(littleEndian: v)
    }

    mutating func u8(_ f: @autoclosure () -> String) throws -> UInt8 { try read(UInt8.self, f()) }
    mutating func u32(_ f: @autoclosure () -> String) throws -> UInt32 { try read(UInt32.self, f()) }
    mutating func u64(_ f: @autoclosure () -> String) throws -> UInt64 { try read(UInt64.self, f()) }

    mutating func f32(_ f: @autoclosure () -> String) throws -> Float { Float(bitPattern: try u32(f())) }
    mutating func f64(_ f: @autoclosure () -> String) throws -> Double { Double(bitPattern: try u64(f())) }

    /// Raw bytes [offset, offset+n) without copying.
    mutating func bytes(_ n: Int, _ field: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        try need(n, field())
        let slice = UnsafeRawBufferPointer(rebasing: buffer[offset ..< offset + n])
        offset += n
        return slice
    }

    /// UTF-8 text of `n` bytes; invalid sequences become U+FFFD (as llama.cpp keeps raw bytes, we never reject on encoding).
    mutating func utf8(_ n: Int, _ field: @autoclosure () -> String) throws -> String {
        let raw = try bytes(n, field())
        return String(decoding: raw, as: UTF8.self)
    }
}

/// Overflow-safe helpers for sizes read from files.
enum Checked {
    static func mul(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : r
    }
    static func add(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? nil : r
    }
    /// Product of non-negative dims, nil on overflow or a negative dim.
    static func product(_ dims: [Int]) -> Int? {
        var p = 1
        for d in dims {
            guard d >= 0, let n = mul(p, d) else { return nil }
            p = n
        }
        return p
    }
    /// Rounds `x` up to a multiple of `align` (a power of two), nil on overflow.
    static func alignUp(_ x: Int, _ align: Int) -> Int? {
        guard let y = add(x, align - 1) else { return nil }
        return y & ~(align - 1)
    }
}
