import Foundation
import PersonaModels
import PersonaRuns

/// One steering instruction: `trait:coef[@row][:positions]`, or `trait:ablate[@row][:positions]`.
///
/// Adding puts `coef * v[row]` (v unnormalised) on the output of block row-1 (HF hidden-state row `row`);
/// ablation removes the component along v: `h - (h . q) q`, q = v / ||v||.
public struct SteeringSpec: Sendable, Equatable {
    public enum Mode: String, Sendable, Codable { case add, ablate }
    /// all: every position of every forward; prompt: prompt positions (prefill only);
    /// response: the last position of each forward (last prompt token, then each new token).
    public enum Positions: String, Sendable, Codable { case all, prompt, response }

    public var trait: String
    public var coef: Float
    public var row: Int?
    public var positions: Positions
    public var mode: Mode
    /// This spec's own closed-loop condition (the API's per-vector `when`); nil: the request's condition, if any.
    public var condition: SteeringCondition?
    /// `trait:auto`: the row and coefficient the vector file recommends (written by `persona evaluate steering`).
    public var auto = false

    public init(trait: String, coef: Float, row: Int? = nil, positions: Positions = .all, mode: Mode = .add,
                condition: SteeringCondition? = nil) {
        self.trait = trait
        self.coef = coef
        self.row = row
        self.positions = positions
        self.mode = mode
        self.condition = condition
    }

    /// Parses the `--steer` syntax; errors quote the text.
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 || parts.count == 3, !parts[0].isEmpty else {
            throw VectorError("--steer '\(text)': expected trait:coef[@layer][:all|prompt|response], e.g. evil:1.5@16:response, evil:ablate or evil:auto")
        }
        trait = parts[0]
        var amount = parts[1]
        row = nil
        if let at = amount.firstIndex(of: "@") {
            let r = String(amount[amount.index(after: at)...])
            guard let n = Int(r), n >= 0 else { throw VectorError("--steer '\(text)': layer '\(r)' is not a hidden-state row number") }
            row = n
            amount = String(amount[..<at])
        }
        if amount == "ablate" {
            mode = .ablate
            coef = 0
        } else if amount == "auto" {
            guard row == nil else { throw VectorError("--steer '\(text)': auto takes the vector's own row; drop @\(row!)") }
            mode = .add
            coef = 0
            auto = true
        } else {
            guard let c = Float(amount), c.isFinite else { throw VectorError("--steer '\(text)': coefficient '\(amount)' is not a number (or 'ablate')") }
            mode = .add
            coef = c
        }
        if parts.count == 3 {
            guard let p = Positions(rawValue: parts[2]) else {
                throw VectorError("--steer '\(text)': positions must be all, prompt or response, not '\(parts[2])'")
            }
            positions = p
        } else {
            positions = .all
        }
    }

    public var description: String {
        "\(trait):\(mode == .ablate ? "ablate" : auto ? "auto" : String(coef))\(row.map { "@\($0)" } ?? ""):\(positions.rawValue)"
    }

    /// The spec with `auto` replaced by the row and coefficient `v` recommends.
    public func resolved(for v: TraitVector) throws -> SteeringSpec {
        guard auto else { return self }
        guard let r = v.steeringRow, let c = v.steeringCoef else {
            throw VectorError("--steer \(trait):auto: the vector has no recommended steering row and coefficient; run `persona evaluate steering ... --write-vector` first, or give trait:coef[@row]")
        }
        var s = self
        s.auto = false
        s.row = r
        s.coef = c
        return s
    }
}

/// Closed-loop steering: apply the steering vectors only while a monitored projection crosses a threshold.
public struct SteeringCondition: Sendable, Equatable {
    public var trait: String
    public var above: Bool
    public var threshold: Float

    /// Parses `trait>0.5` or `trait<-1`.
    public init(parsing text: String) throws {
        guard let c = SteeringRecord.parseCondition(text) else {
            throw VectorError("--steer-when '\(text)': expected trait>threshold or trait<threshold, e.g. evil>2.5")
        }
        trait = c.trait
        above = c.above
        threshold = c.threshold
    }

    public init(trait: String, above: Bool, threshold: Float) {
        self.trait = trait
        self.above = above
        self.threshold = threshold
    }

    public func holds(_ score: Float) -> Bool { above ? score > threshold : score < threshold }
    public var description: String { "\(trait)\(above ? ">" : "<")\(threshold)" }
}

public enum Steering {
    /// Builds the interventions for `specs`. `promptLength` defines the prompt positions.
    /// With a condition (the spec's own, else `condition`), a vector applies only while `monitor`'s latest projection
    /// of the condition's trait holds it.
    public static func interventions(_ specs: [SteeringSpec], vectors: [TraitVector], numLayers: Int, promptLength: Int,
                                     condition: SteeringCondition? = nil, monitor: TraitMonitor? = nil) throws -> [Intervention] {
        for c in [condition] + specs.map(\.condition) {
            if let c, monitor?.primaryProbe(trait: c.trait) == nil {
                throw VectorError("--steer-when: trait '\(c.trait)' is not monitored")
            }
        }
        return try specs.flatMap { given in
            let v = try TraitSelection.find(given.trait, in: vectors, option: "--steer")
            let spec = try given.resolved(for: v)
            return try rows(spec, v).map { row in
                guard row >= 0, row < v.rows.count, var point = HookPoint.hiddenStateRow(row, numLayers: numLayers) else {
                    throw VectorError("--steer: row \(row) is out of range (0...\(numLayers))")
                }
                // llama.cpp adds direction.N to block N's output; for the last block that is before the final norm
                if v.isControlVector && spec.row == nil { point = .residPost(row - 1) }
                return try intervention(spec, vector: v.rows[row], at: point, promptLength: promptLength,
                                        condition: spec.condition ?? condition, monitor: monitor)
            }
        }
    }

    /// The rows a spec steers: its own row; every non-zero row of a control vector given without one (as
    /// llama.cpp's `--control-vector` applies each direction at its block); else the vector's default steering row.
    public static func rows(_ spec: SteeringSpec, _ v: TraitVector) -> [Int] {
        if let r = spec.row { return [r] }
        if v.isControlVector { let norms = v.norms; return (1..<v.rows.count).filter { norms[$0] > 0 } }
        return [v.defaultSteeringRow]
    }

    private static func intervention(_ spec: SteeringSpec, vector: [Float], at point: HookPoint, promptLength: Int,
                                     condition: SteeringCondition?, monitor: TraitMonitor?) throws -> Intervention {
        guard spec.mode == .add || vector.contains(where: { $0 != 0 }) else {
            throw VectorError("--steer \(spec.trait):ablate: the vector is zero at \(point.name); nothing to ablate")
        }
        let positions: PositionSelector
        switch spec.positions {
        case .all: positions = .all
        case .prompt: positions = .range(0..<promptLength)
        case .response: positions = .last
        }
        let action: Intervention.Action = spec.mode == .add ? .add(vector: vector, coef: spec.coef) : .ablate(direction: vector)
        guard let condition, let monitor else { return Intervention(point, positions: positions, action) }
        // Closed loop: the same operation, gated by the latest monitored score.
        return Intervention(point, positions: positions, action, gate: {
            monitor.latest(trait: condition.trait).map(condition.holds) ?? false
        })
    }
}
