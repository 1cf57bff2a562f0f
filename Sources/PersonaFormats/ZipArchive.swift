import Foundation

/// Minimal read-only ZIP reader for torch `.pt` archives: stored (uncompressed) entries only, ZIP64 aware,
/// every offset and size checked against the file.
struct ZipArchive {
    struct Entry { let name: String; let dataOffset: Int; let size: Int }
    let file: MappedFile
    let entries: [String: Entry]
    private var name: String { file.url.path }

    init(file: MappedFile) throws {
        self.file = file
        let fname = file.url.path
        var r = ByteReader(file.bytes, file: fname)
        let count = file.bytes.count
        guard count >= 22 else { throw FormatError(file: fname, "not a zip archive (too short)") }

        // End of central directory: within the last 22 + 65535 bytes.
        var eocd = -1
        var p = count - 22
        let lowest = max(0, count - 22 - 65535)
        while p >= lowest {
            if file.bytes.loadUnaligned(fromByteOffset: p, as: UInt32.self) == UInt32(0x0605_4b50).littleEndian { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else { throw FormatError(file: fname, "not a zip archive (no end-of-central-directory record)") }
        try r.seek(eocd + 10, "zip end record")
        var total = Int(try r.read(UInt16.self, "zip entry count"))
        var cdSize = Int(try r.u32("zip central directory size"))
        var cdOffset = Int(try r.u32("zip central directory offset"))
        if total == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // ZIP64: locator just before the end record points at the ZIP64 end record.
            guard eocd >= 20 else { throw FormatError(file: fname, "zip64 locator missing") }
            try r.seek(eocd - 20, "zip64 locator")
            guard try r.u32("zip64 locator signature") == 0x0706_4b50 else { throw FormatError(file: fname, "zip64 locator missing") }
            try r.skip(4, "zip64 locator")
            let z64 = try r.u64("zip64 end record offset")
            guard let z = Int(exactly: z64) else { throw FormatError(file: fname, "zip64 end record offset out of range") }
            try r.seek(z, "zip64 end record")
            guard try r.u32("zip64 end record signature") == 0x0606_4b50 else { throw FormatError(file: fname, "bad zip64 end record") }
            try r.skip(28, "zip64 end record")
            let t = try r.u64("zip64 entry count"), s = try r.u64("zip64 central directory size"), o = try r.u64("zip64 central directory offset")
            guard let ti = Int(exactly: t), let si = Int(exactly: s), let oi = Int(exactly: o) else {
                throw FormatError(file: fname, "zip64 sizes out of range")
            }
            (total, cdSize, cdOffset) = (ti, si, oi)
        }
        guard let cdEnd = Checked.add(cdOffset, cdSize), cdEnd <= count else {
            throw FormatError(file: fname, "zip central directory [\(cdOffset), +\(cdSize)) lies outside the file")
        }
        guard total <= cdSize / 46 else { throw FormatError(file: fname, "zip entry count \(total) does not fit the central directory") }

        var entries = [String: Entry]()
        try r.seek(cdOffset, "zip central directory")
        for i in 0 ..< total {
            let field = "zip entry #\(i)"
            guard try r.u32(field) == 0x0201_4b50 else { throw FormatError(file: fname, "\(field): bad central directory signature") }
            try r.skip(6, field)
            let method = try r.read(UInt16.self, field)
            try r.skip(8, field)
            var csize = UInt64(try r.u32(field))
            var usize = UInt64(try r.u32(field))
            let nlen = Int(try r.read(UInt16.self, field))
            let elen = Int(try r.read(UInt16.self, field))
            let clen = Int(try r.read(UInt16.self, field))
            try r.skip(8, field)
            var local = UInt64(try r.u32(field))
            let ename = try r.utf8(nlen, "\(field) name")
            var extra = ByteReader(try r.bytes(elen, "\(field) extra"), file: fname)
            try r.skip(clen, "\(field) comment")
            // ZIP64 extended information replaces the fields that were saturated, in this order.
            while extra.remaining >= 4 {
                let id = try extra.read(UInt16.self, "\(ename) extra id")
                let len = Int(try extra.read(UInt16.self, "\(ename) extra length"))
                var sub = ByteReader(try extra.bytes(len, "'\(ename)' extra field"), file: fname)
                if id == 1 {
                    if usize == 0xFFFF_FFFF { usize = try sub.u64("'\(ename)' zip64 size") }
                    if csize == 0xFFFF_FFFF { csize = try sub.u64("'\(ename)' zip64 compressed size") }
                    if local == 0xFFFF_FFFF { local = try sub.u64("'\(ename)' zip64 offset") }
                }
            }
            guard method == 0 else {
                throw FormatError(file: fname, "zip entry '\(ename)' is compressed (method \(method)); only stored entries are supported")
            }
            guard csize == usize, let size = Int(exactly: usize), let loc = Int(exactly: local) else {
                throw FormatError(file: fname, "zip entry '\(ename)': inconsistent sizes")
            }
            var lr = ByteReader(file.bytes, file: fname)
            try lr.seek(loc, "zip entry '\(ename)' local header")
            guard try lr.u32("zip entry '\(ename)' local header") == 0x0403_4b50 else {
                throw FormatError(file: fname, "zip entry '\(ename)': bad local header signature")
            }
            try lr.skip(22, "zip entry '\(ename)' local header")
            let ln = Int(try lr.read(UInt16.self, "zip entry '\(ename)' local header"))
            let le = Int(try lr.read(UInt16.self, "zip entry '\(ename)' local header"))
            try lr.skip(ln + le, "zip entry '\(ename)' local header")
            try lr.need(size, "zip entry '\(ename)' data")
            guard entries[ename] == nil else { throw FormatError(file: fname, "duplicate zip entry '\(ename)'") }
            entries[ename] = Entry(name: ename, dataOffset: lr.offset, size: size)
        }
        self.entries = entries
    }

    /// The bytes of an entry (bounds were checked when the directory was read).
    func bytes(of e: Entry) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[e.dataOffset ..< e.dataOffset + e.size])
    }
}
