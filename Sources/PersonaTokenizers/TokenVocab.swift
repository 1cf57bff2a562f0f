/// A String key compared and hashed by its UTF-8 bytes. Swift's String equality is canonical
/// equivalence ("ά" U+03AC == "ά" U+1F71), but vocabularies hold both as distinct tokens.
struct ByteString: Hashable {
    let string: String
    init(_ s: String) { string = s }

    static func == (a: ByteString, b: ByteString) -> Bool { a.string.utf8.elementsEqual(b.string.utf8) }

    func hash(into h: inout Hasher) {
        var s = string
        s.withUTF8 { h.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}

/// Token -> id map with byte-exact keys.
struct TokenVocab {
    private(set) var map: [ByteString: Int] = [:]
    init() {}
    init(minimumCapacity n: Int) { map.reserveCapacity(n) }
    subscript(_ s: String) -> Int? {
        get { map[ByteString(s)] }
        set { map[ByteString(s)] = newValue }
    }
    var count: Int { map.count }
    var values: Dictionary<ByteString, Int>.Values { map.values }
    var pairs: [(String, Int)] { map.map { ($0.key.string, $0.value) } }
}
