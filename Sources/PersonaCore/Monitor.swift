import Foundation
import PersonaModels
import PersonaTensor

/// Which hidden-state rows to monitor.
public enum LayerSelection: Sendable, Equatable {
    /// Each vector's recommended row.
    case recommended
    /// Every row 0...L.
    case all
    /// These HF rows (persona_vectors' "layer" numbers).
    case rows([Int])

    /// Parses `--layers`: "all", "recommended", or a comma list of rows ("16", "8,16,20").
    public init(parsing s: String) throws {
        switch s.lowercased() {
        case "all": self = .all
        case "recommended", "default", "": self = .recommended
        default:
            var rows: [Int] = []
            for part in s.split(separator: ",") {
                guard let r = Int(part.trimmingCharacters(in: .whitespaces)), r >= 0 else {
                    throw VectorError("--layers: '\(part)' is not a hidden-state row number (0...L), 'all' or 'recommended'")
                }
                rows.append(r)
            }
            self = .rows(rows)
        }
    }
}

/// One (trait, row) pair being watched.
public struct Probe: Sendable {
    public let trait: String
    public let row: Int
    public let point: HookPoint
    /// ||v|| at this row.
    public let norm: Float
    /// v / ||v||.
    let unit: [Float]
}

/// Records, for every position a forward pass touches, the scalar projection `(h . v) / ||v||` of the
/// residual stream onto each trait vector, plus cosine and the residual norm. Storage is preallocated
/// for `capacity` positions, so monitoring allocates nothing per token.
///
/// Convention: the score at position p describes the hidden state computed at position p, i.e. of the
/// token at p itself (not of the position that predicted it).
public final class TraitMonitor: @unchecked Sendable {
    public let probes: [Probe]
    public let traits: [String]
    /// The row each trait reports by default (its recommended row, or the first selected row).
    public let primaryRow: [String: Int]
    public let capacity: Int
    private var projections: [Float]   // [probe][position]
    private var cosines: [Float]       // [probe][position]
    private var norms: [Float]         // [probe][position]: ||h|| at the probe's point
    private var seen: [Bool]           // [position]
    private var primaryIndex: [Int]    // per trait: its primary probe
    /// The first non-finite activation met, if any.
    public private(set) var nonFinite: (point: HookPoint, position: Int)? = nil
    private var latestPosition = -1

    public init(vectors: [TraitVector], layers: LayerSelection, numLayers: Int, hiddenSize: Int, capacity: Int) throws {
        var probes: [Probe] = []
        var primary: [String: Int] = [:]
        var primaryIndex: [Int] = []
        var traits: [String] = []
        for v in vectors {
            guard v.rows.count == numLayers + 1, v.hiddenSize == hiddenSize else {
                throw VectorError("trait '\(v.trait)': vector is [\(v.rows.count), \(v.hiddenSize)], the model needs [\(numLayers + 1), \(hiddenSize)]")
            }
            guard !traits.contains(v.trait) else { throw VectorError("trait '\(v.trait)' given twice") }
            let rows: [Int]
            switch layers {
            case .recommended: rows = [v.defaultRow]
            case .all: rows = Array(0...numLayers)
            case .rows(let r):
                for x in r where x > numLayers {
                    throw VectorError("--layers: row \(x) is out of range for a model with \(numLayers) layers (rows 0...\(numLayers))")
                }
                rows = r
            }
            let main = rows.contains(v.defaultRow) ? v.defaultRow : rows[0]
            // A zero vector projects everything to 0: refuse it rather than report a flat line (a control vector
            // has no rows 0 and 1). With --layers all, zero rows are listed as 0 beside a non-zero primary row.
            let norms = v.norms   // every row's ||v||, once
            for r in (layers == .all ? [main] : rows) where !(norms[r] > 0) {
                throw VectorError("trait '\(v.trait)': the vector is zero at row \(r) (\(HookPoint.hiddenStateRow(r, numLayers: numLayers)!.name)); "
                    + "non-zero rows: \(Self.rowRanges((0...numLayers).filter { norms[$0] > 0 }))")
            }
            traits.append(v.trait)
            primary[v.trait] = main
            for r in rows {
                let n = norms[r]
                let unit = n > 0 ? v.rows[r].map { $0 / n } : v.rows[r]
                if r == main { primaryIndex.append(probes.count) }
                probes.append(Probe(trait: v.trait, row: r, point: HookPoint.hiddenStateRow(r, numLayers: numLayers)!, norm: n, unit: unit))
            }
        }
        self.probes = probes
        self.traits = traits
        self.primaryRow = primary
        self.primaryIndex = primaryIndex
        self.capacity = capacity
        projections = [Float](repeating: .nan, count: probes.count * capacity)
        cosines = [Float](repeating: .nan, count: probes.count * capacity)
        norms = [Float](repeating: .nan, count: probes.count * capacity)
        seen = [Bool](repeating: false, count: capacity)
    }

    /// "2-5, 7" (or "none").
    static func rowRanges(_ rows: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        while i < rows.count {
            var j = i
            while j + 1 < rows.count && rows[j + 1] == rows[j] + 1 { j += 1 }
            parts.append(i == j ? "\(rows[i])" : "\(rows[i])-\(rows[j])")
            i = j + 1
        }
        return parts.isEmpty ? "none" : parts.joined(separator: ", ")
    }

    /// One read-only intervention per hook point that has probes. They keep the monitor alive (no cycle: the
    /// monitor does not hold them), so a hook set may outlive the caller's reference to the monitor.
    public func interventions() -> [Intervention] {
        var byPoint: [HookPoint: [Int]] = [:]
        for (i, p) in probes.enumerated() { byPoint[p.point, default: []].append(i) }
        return byPoint.map { point, indices in
            Intervention(point, .custom { position, row, ctx in
                self.record(indices: indices, position: position, row: row, dim: ctx.dim, point: point)
            })
        }
    }

    private func record(indices: [Int], position: Int, row: UnsafeMutablePointer<Float>, dim: Int, point: HookPoint) {
        guard position >= 0, position < capacity else { return }
        let hn = Ops.dot(row, row, n: dim).squareRoot()
        if !hn.isFinite, nonFinite == nil { nonFinite = (point, position) }
        for i in indices {
            let d = probes[i].unit.withUnsafeBufferPointer { Ops.dot(row, $0.baseAddress!, n: dim) }
            let k = i * capacity + position
            projections[k] = d
            cosines[k] = hn > 0 ? d / hn : 0
            norms[k] = hn
        }
        seen[position] = true
        if position > latestPosition { latestPosition = position }
    }

    public func projection(probe: Int, position: Int) -> Float { projections[probe * capacity + position] }

    /// Every trait's score (its primary probe's projection) at each of `positions`.
    public func scores(positions: Range<Int>) -> [String: [Double]] {
        var out: [String: [Double]] = [:]
        for trait in traits {
            guard let main = primaryProbe(trait: trait) else { continue }
            out[trait] = positions.map { Double(projection(probe: main, position: $0)) }
        }
        return out
    }
    public func cosine(probe: Int, position: Int) -> Float { cosines[probe * capacity + position] }
    public func residualNorm(probe: Int, position: Int) -> Float { norms[probe * capacity + position] }
    public func hasPosition(_ p: Int) -> Bool { p >= 0 && p < capacity && seen[p] }

    /// Index of the trait's primary probe.
    public func primaryProbe(trait: String) -> Int? {
        traits.firstIndex(of: trait).map { primaryIndex[$0] }
    }

    /// Scores of every trait at its primary row for one position.
    public func primaryScores(position: Int) -> [String: Double] {
        var out: [String: Double] = [:]
        for (t, i) in zip(traits, primaryIndex) { out[t] = Double(projection(probe: i, position: position)) }
        return out
    }

    /// The most recent recorded projection of a trait at its primary row (for closed-loop steering).
    public func latest(trait: String) -> Float? {
        guard let i = primaryProbe(trait: trait) else { return nil }
        var p = min(latestPosition, capacity - 1)
        while p >= 0 {
            let v = projection(probe: i, position: p)
            if !v.isNaN { return v }
            p -= 1
        }
        return nil
    }
}
