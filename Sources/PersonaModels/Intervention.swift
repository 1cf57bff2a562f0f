import PersonaTensor

/// Which positions of the sequence an intervention touches.
public enum PositionSelector: Sendable, Equatable {
    /// Every position of every forward pass.
    case all
    /// Absolute positions in the sequence (e.g. the prompt: `0..<promptLength`).
    case range(Range<Int>)
    /// The last position of each forward pass: the last prompt token at prefill, then each new token.
    case last

    @inline(__always)
    func contains(position: Int, t: Int, count: Int) -> Bool {
        switch self {
        case .all: return true
        case .range(let r): return r.contains(position)
        case .last: return t == count - 1
        }
    }
}

/// The hidden state rows an observer sees: `T` rows of `dim` floats starting at absolute position `startPosition`.
public struct HookContext {
    public let point: HookPoint
    public let startPosition: Int
    public let count: Int
    public let dim: Int
}

/// An intervention on one hook point: read or change the residual stream there.
/// Interventions are values passed to a forward pass, so capture, monitoring and steering share one mechanism.
public struct Intervention: @unchecked Sendable {
    public enum Action {
        /// h += coef * vector
        case add(vector: [Float], coef: Float)
        /// h -= (h . q) q with q = direction / ||direction|| (directional ablation)
        case ablate(direction: [Float])
        /// h = vector
        case replace(vector: [Float])
        /// Copies the selected rows into the buffer (position-tagged).
        case capture(CaptureBuffer)
        /// Reads or modifies one row in place: (position, row pointer). Runs on the forward's thread.
        case custom((Int, UnsafeMutablePointer<Float>, HookContext) -> Void)
    }

    public var point: HookPoint
    public var positions: PositionSelector
    public var action: Action
    /// Asked once per forward pass at this point: the action runs only when it returns true (closed-loop steering).
    public var gate: (() -> Bool)?

    public init(_ point: HookPoint, positions: PositionSelector = .all, _ action: Action, gate: (() -> Bool)? = nil) {
        self.point = point
        self.positions = positions
        self.gate = gate
        if case .ablate(let d) = action {
            // Normalise once here, not per row.
            let n = d.reduce(0) { $0 + $1 * $1 }.squareRoot()
            self.action = .ablate(direction: n > 0 ? d.map { $0 / n } : d)
        } else {
            self.action = action
        }
    }
}

/// Rows captured at a hook point, in the order the forward passes produced them.
public final class CaptureBuffer: @unchecked Sendable {
    public private(set) var positions: [Int] = []
    public private(set) var values: [Float] = []
    public private(set) var dim: Int = 0

    public init() {}

    func append(position: Int, row: UnsafePointer<Float>, dim: Int) {
        self.dim = dim
        positions.append(position)
        values.append(contentsOf: UnsafeBufferPointer(start: row, count: dim))
    }

    /// Row i as an array.
    public func row(_ i: Int) -> [Float] { Array(values[i * dim ..< (i + 1) * dim]) }
    public var count: Int { positions.count }
    public func removeAll() { positions.removeAll(keepingCapacity: true); values.removeAll(keepingCapacity: true) }
}

/// All interventions of one forward pass, grouped by hook point. Empty sets cost one branch per hook site.
public struct HookSet: @unchecked Sendable {
    private var byPoint: [HookPoint: [Intervention]] = [:]
    public private(set) var isEmpty = true

    public init(_ interventions: [Intervention] = []) {
        for i in interventions { add(i) }
    }

    public mutating func add(_ i: Intervention) {
        byPoint[i.point, default: []].append(i)
        isEmpty = false
    }

    public var interventions: [Intervention] { byPoint.values.flatMap { $0 } }

    /// Applies every intervention registered at `point` to `x` ([count, dim] rows at positions start..<start+count).
    @inline(__always)
    func apply(_ point: HookPoint, _ x: UnsafeMutablePointer<Float>, start: Int, count: Int, dim: Int) {
        if isEmpty { return }
        guard let list = byPoint[point] else { return }
        let ctx = HookContext(point: point, startPosition: start, count: count, dim: dim)
        for iv in list {
            if let gate = iv.gate, !gate() { continue }
            for t in 0..<count where iv.positions.contains(position: start + t, t: t, count: count) {
                let row = x + t * dim
                switch iv.action {
                case .add(let v, let coef):
                    precondition(v.count == dim, "steering vector has \(v.count) values, \(point) has \(dim)")
                    v.withUnsafeBufferPointer { vb in
                        for i in 0..<dim { row[i] += coef * vb[i] }
                    }
                case .ablate(let q):
                    precondition(q.count == dim, "ablation direction has \(q.count) values, \(point) has \(dim)")
                    q.withUnsafeBufferPointer { qb in
                        let d = Ops.dot(row, qb.baseAddress!, n: dim)
                        for i in 0..<dim { row[i] -= d * qb[i] }
                    }
                case .replace(let v):
                    precondition(v.count == dim, "replacement has \(v.count) values, \(point) has \(dim)")
                    v.withUnsafeBufferPointer { vb in row.update(from: vb.baseAddress!, count: dim) }
                case .capture(let buf):
                    buf.append(position: start + t, row: row, dim: dim)
                case .custom(let f):
                    f(start + t, row, ctx)
                }
            }
        }
    }
}
