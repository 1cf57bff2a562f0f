/// A deliberately tiny pickle interpreter for `torch.save` archives. It knows only the opcodes torch emits for
/// tensors and dicts of tensors, never imports or calls anything: GLOBAL resolves to a name from an allow-list,
/// and REDUCE only "calls" `_rebuild_tensor_v2` and `OrderedDict()` by building plain values.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case tuple([PickleValue])
    case list(ListBox)
    case dict(DictBox)
    case global(String)
    case storage(StorageRef)
    case tensor(TensorRef)

    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case let .global(g): return g
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

final class ListBox { var items: [PickleValue] = [] }
final class DictBox { var items: [(key: PickleValue, value: PickleValue)] = [] }

struct StorageRef { let key: String; let storageType: String; let numel: Int }
struct TensorRef { let storage: StorageRef; let offset: Int; let size: [Int]; let stride: [Int] }

struct TorchPickle {
    static let allowedGlobals: Set<String> = [
        "torch._utils._rebuild_tensor_v2", "torch.FloatStorage", "torch.HalfStorage", "torch.BFloat16Storage",
        "collections.OrderedDict",
    ]
    static let maxStack = 100_000
    static let maxMemo = 1_000_000

    let file: String

    func fail(_ what: String) -> FormatError { FormatError(file: file, "data.pkl: \(what)") }

    func run(_ bytes: UnsafeRawBufferPointer) throws -> PickleValue {
        var r = ByteReader(bytes, file: file)
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]

        func pop() throws -> PickleValue {
            guard let v = stack.popLast() else { throw fail("stack underflow at offset \(r.offset)") }
            return v
        }
        func popMark() throws -> [PickleValue] {
            guard let m = marks.popLast(), m <= stack.count else { throw fail("missing MARK at offset \(r.offset)") }
            let items = Array(stack[m...])
            stack.removeSubrange(m...)
            return items
        }
        func push(_ v: PickleValue) throws {
            guard stack.count < Self.maxStack else { throw fail("stack deeper than \(Self.maxStack)") }
            stack.append(v)
        }
        func put(_ i: Int) throws {
            guard let top = stack.last else { throw fail("memo put on an empty stack") }
            guard memo.count < Self.maxMemo || memo[i] != nil else { throw fail("too many memo entries") }
            memo[i] = top
        }
        func get(_ i: Int) throws {
            guard let v = memo[i] else { throw fail("memo get of unknown index \(i)") }
            try push(v)
        }
        func line(_ field: String) throws -> String {
            var s = [UInt8]()
            while true {
                let c = try r.u8(field)
                if c == 0x0A { break }
                guard s.count < 256 else { throw fail("\(field) longer than 256 bytes") }
                s.append(c)
            }
            return String(decoding: s, as: UTF8.self)
        }
        func global(_ module: String, _ name: String) throws -> PickleValue {
            let full = "\(module).\(name)"
            guard Self.allowedGlobals.contains(full) else { throw fail("refusing global '\(full)' (only tensor data is read)") }
            return .global(full)
        }
        func setItems(_ d: DictBox, _ kv: [PickleValue]) throws {
            guard kv.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
            for i in stride(from: 0, to: kv.count, by: 2) { d.items.append((kv[i], kv[i + 1])) }
        }

        while true {
            let op = try r.u8("opcode")
            switch op {
            case 0x80: _ = try r.u8("protocol")                       // PROTO
            case 0x95: try r.skip(8, "frame length")                  // FRAME
            case 0x2E: // STOP
                guard stack.count == 1 else { throw fail("STOP with \(stack.count) values on the stack") }
                return stack[0]
            case 0x28: marks.append(stack.count)                      // MARK
            case 0x7D: try push(.dict(DictBox()))                     // EMPTY_DICT
            case 0x5D: try push(.list(ListBox()))                     // EMPTY_LIST
            case 0x29: try push(.tuple([]))                           // EMPTY_TUPLE
            case 0x4E: try push(.none)                                // NONE
            case 0x88: try push(.bool(true))                          // NEWTRUE
            case 0x89: try push(.bool(false))                         // NEWFALSE
            case 0x4B: try push(.int(Int(try r.u8("BININT1"))))       // BININT1
            case 0x4D: try push(.int(Int(try r.read(UInt16.self, "BININT2"))))
            case 0x4A: try push(.int(Int(try r.read(Int32.self, "BININT"))))
            case 0x8A: // LONG1: little-endian two's complement, up to 8 bytes
                let n = Int(try r.u8("LONG1 length"))
                guard n <= 8 else { throw fail("integer of \(n) bytes is too large") }
                let b = try r.bytes(n, "LONG1")
                var v: UInt64 = 0
                for (i, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 { v |= ~UInt64(0) << (8 * UInt64(n)) }
                try push(.int(Int(Int64(bitPattern: v))))
            case 0x47: // BINFLOAT (big-endian)
                try push(.float(Double(bitPattern: UInt64(bigEndian: try r.read(UInt64.self, "BINFLOAT").littleEndian))))
            case 0x58, 0x8C, 0x8D: // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                let n64: UInt64 = op == 0x58 ? UInt64(try r.u32("string length")) : op == 0x8C ? UInt64(try r.u8("string length")) : try r.u64("string length")
                guard let n = Int(exactly: n64) else { throw fail("string length \(n64) out of range") }
                try push(.string(try r.utf8(n, "string")))
            case 0x71: try put(Int(try r.u8("BINPUT")))               // BINPUT
            case 0x72: try put(Int(try r.u32("LONG_BINPUT")))         // LONG_BINPUT
            case 0x94: try put(memo.count)                            // MEMOIZE
            case 0x68: try get(Int(try r.u8("BINGET")))               // BINGET
            case 0x6A: try get(Int(try r.u32("LONG_BINGET")))         // LONG_BINGET
            case 0x63: // GLOBAL "module\nname\n"
                let m = try line("GLOBAL module"), n = try line("GLOBAL name")
                try push(try global(m, n))
            case 0x93: // STACK_GLOBAL
                guard case let .string(n) = try pop(), case let .string(m) = try pop() else { throw fail("STACK_GLOBAL needs two strings") }
                try push(try global(m, n))
            case 0x74: try push(.tuple(try popMark()))                // TUPLE
            case 0x85: try push(.tuple([try pop()]))                  // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); try push(.tuple([a, b]))
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); try push(.tuple([a, b, c]))
            case 0x61: // APPEND
                let v = try pop()
                guard case let .list(l) = stack.last else { throw fail("APPEND to a non-list") }
                l.items.append(v)
            case 0x65: // APPENDS
                let items = try popMark()
                guard case let .list(l) = stack.last else { throw fail("APPENDS to a non-list") }
                l.items += items
            case 0x73: // SETITEM
                let v = try pop(), k = try pop()
                guard case let .dict(d) = stack.last else { throw fail("SETITEM on a non-dict") }
                d.items.append((k, v))
            case 0x75: // SETITEMS
                let kv = try popMark()
                guard case let .dict(d) = stack.last else { throw fail("SETITEMS on a non-dict") }
                try setItems(d, kv)
            case 0x51: try push(.storage(try storage(try pop())))     // BINPERSID
            case 0x52: // REDUCE
                let args = try pop(), f = try pop()
                try push(try reduce(f, args))
            default:
                throw fail("unsupported pickle opcode 0x\(String(op, radix: 16)) at offset \(r.offset - 1)")
            }
        }
    }

    /// Persistent id ('storage', StorageType, key, location, numel) -> a reference into data/<key>.
    func storage(_ pid: PickleValue) throws -> StorageRef {
        guard case let .tuple(t) = pid, t.count == 5, case .string("storage") = t[0], case let .global(type) = t[1],
              case let .string(key) = t[2], case let .int(numel) = t[4], numel >= 0 else {
            throw fail("unsupported persistent id (expected a torch storage)")
        }
        guard type.hasSuffix("Storage") else { throw fail("'\(type)' is not a storage type") }
        return StorageRef(key: key, storageType: type, numel: numel)
    }

    func reduce(_ f: PickleValue, _ args: PickleValue) throws -> PickleValue {
        guard case let .global(name) = f, case let .tuple(a) = args else {
            throw fail("REDUCE of \(f.kind) is not supported")
        }
        switch name {
        case "collections.OrderedDict":
            guard a.isEmpty else { throw fail("OrderedDict with arguments is not supported") }
            return .dict(DictBox())
        case "torch._utils._rebuild_tensor_v2":
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            guard a.count == 6 || a.count == 7, case let .storage(s) = a[0], case let .int(off) = a[1],
                  case let .tuple(sizeT) = a[2], case let .tuple(strideT) = a[3] else {
                throw fail("malformed _rebuild_tensor_v2 arguments")
            }
            let size = try sizeT.map { v -> Int in
                guard case let .int(i) = v, i >= 0 else { throw fail("tensor size must be non-negative integers") }
                return i
            }
            let stride = try strideT.map { v -> Int in
                guard case let .int(i) = v, i >= 0 else { throw fail("tensor stride must be non-negative integers") }
                return i
            }
            guard size.count == stride.count, off >= 0 else { throw fail("tensor size/stride/offset mismatch") }
            if case let .dict(hooks) = a[5], !hooks.items.isEmpty { throw fail("tensors with backward hooks are not supported") }
            return .tensor(TensorRef(storage: s, offset: off, size: size, stride: stride))
        default:
            throw fail("calling '\(name)' is not supported")
        }
    }
}
