import Foundation
import PersonaFormats
import PersonaModels
import PersonaTensor

/// One trait direction for every hidden-state row of a model.
///
/// Rows follow the Hugging Face / persona_vectors convention: `rows.count == L + 1`, row 0 = embeddings,
/// row l = output of block l-1 (`blocks.{l-1}.hook_resid_post`), row L = after the final norm.
/// Vectors are mean differences (positive minus negative), not normalised; a larger projection means
/// more of the trait as `positiveMeaning` states it.
public struct TraitVector: Sendable {
    public var trait: String
    /// response_avg, prompt_avg, prompt_last (persona_vectors), or what an imported file called it.
    public var method: String
    public var rows: [[Float]]
    /// The row to monitor by default (the extraction's best held-out separation).
    public var recommendedRow: Int?
    /// The row and coefficient to steer with by default, once measured (a steering sweep); until then steering
    /// uses `defaultSteeringRow` and needs an explicit coefficient.
    public var steeringRow: Int?
    public var steeringCoef: Float?
    /// Read from a llama.cpp control vector: without an explicit row it steers as llama.cpp's `--control-vector`
    /// does, every direction at its own block.
    public var isControlVector = false
    public var model: String?
    public var positiveMeaning: String?
    public var samplesPositive: Int?
    public var samplesNegative: Int?
    /// Where the vector came from (file path / format), for display.
    public var source: String?

    public init(trait: String, method: String, rows: [[Float]], recommendedRow: Int? = nil, model: String? = nil,
                positiveMeaning: String? = nil, samplesPositive: Int? = nil, samplesNegative: Int? = nil, source: String? = nil) {
        self.trait = trait
        self.method = method
        self.rows = rows
        self.recommendedRow = recommendedRow
        self.model = model
        self.positiveMeaning = positiveMeaning
        self.samplesPositive = samplesPositive
        self.samplesNegative = samplesNegative
        self.source = source
    }

    public var numLayers: Int { rows.count - 1 }
    public var hiddenSize: Int { rows.first?.count ?? 0 }
    public var norms: [Float] { rows.map { r in r.reduce(0) { $0 + $1 * $1 }.squareRoot() } }

    /// The default monitoring row: the stored recommendation, else about a third of the depth (CAA's finding),
    /// moved to the nearest row that holds a non-zero vector (a control vector has no rows 0 and 1).
    public var defaultRow: Int {
        if let r = recommendedRow, r >= 0, r < rows.count { return r }
        return nearestNonZeroRow(to: max(1, min(rows.count - 1, numLayers / 3)))
    }

    /// The default steering row: the measured one, else the middle of the depth (persona_vectors steers at
    /// mid-to-late rows, e.g. 20 of 28; the best-separating row is often the last, where adding a vector only
    /// reaches the unembedding), moved to the nearest non-zero row.
    public var defaultSteeringRow: Int {
        if let r = steeringRow, r >= 0, r < rows.count { return r }
        return nearestNonZeroRow(to: max(1, min(rows.count - 1, (numLayers + 1) / 2)))
    }

    /// `row` if it holds a non-zero vector, else the closest row (the lower one first on a tie) that does,
    /// skipping row 0 (the embeddings); `row` itself when every row is zero.
    public func nearestNonZeroRow(to row: Int) -> Int {
        let n = norms
        for d in 0..<rows.count {
            for r in d == 0 ? [row] : [row - d, row + d] where r >= 1 && r < rows.count && n[r] > 0 { return r }
        }
        return row
    }

    /// The hook point of row `row` (never a bare layer number between components).
    public func hookPoint(row: Int) -> HookPoint? { HookPoint.hiddenStateRow(row, numLayers: numLayers) }

    /// Checks the vector fits a model.
    public func check(against config: ModelConfig) throws {
        guard rows.count == config.numLayers + 1 else {
            throw VectorError("trait '\(trait)': vector has \(rows.count) rows, the model needs \(config.numLayers + 1) (L+1 hidden-state rows)")
        }
        guard hiddenSize == config.hiddenSize else {
            throw VectorError("trait '\(trait)': vector width \(hiddenSize) does not match the model's hidden size \(config.hiddenSize)")
        }
    }
}

/// One vector per trait out of a file that may hold several averaging methods of a trait (an extraction writes
/// response_avg, prompt_avg and prompt_last). A bare trait name means its default method: response_avg (the
/// paper's), else prompt_avg, prompt_last, else the first the file holds. `trait@method` (or `trait.method`)
/// picks another; it is labelled `trait@method` unless it is the default, so two methods can be watched side by side.
public enum TraitSelection {
    public static let methodPreference = ["response_avg", "prompt_avg", "prompt_last"]

    /// The default method's vector for every trait, in the order traits first appear.
    public static func defaults(_ vectors: [TraitVector]) -> [TraitVector] {
        var seen = Set<String>()
        return vectors.compactMap { v in seen.insert(v.trait).inserted ? defaultVector(v.trait, in: vectors) : nil }
    }

    /// Resolves `names` (nil: every trait's default), each `trait`, `trait@method` or `trait.method`. `option`
    /// names the argument in errors.
    public static func select(_ names: [String]?, from vectors: [TraitVector], option: String = "--traits") throws -> [TraitVector] {
        guard let names else { return defaults(vectors) }
        return try names.map { try find($0, in: vectors, option: option) }
    }

    /// One vector by name, labelled as described above.
    public static func find(_ name: String, in vectors: [TraitVector], option: String = "--traits") throws -> TraitVector {
        if let v = defaultVector(name, in: vectors) { return v }
        for sep: Character in ["@", "."] {
            guard let i = name.lastIndex(of: sep) else { continue }
            let trait = String(name[..<i]), method = String(name[name.index(after: i)...])
            let forTrait = vectors.filter { $0.trait == trait }
            guard !forTrait.isEmpty else { continue }
            guard var v = forTrait.first(where: { $0.method == method }) else {
                throw VectorError("\(option): trait '\(trait)' has no method '\(method)' (have: \(forTrait.map(\.method).joined(separator: ", ")))")
            }
            if v.method != defaultVector(trait, in: vectors)?.method { v.trait = "\(trait)@\(method)" }
            return v
        }
        throw VectorError("\(option): no vector for trait '\(name)' (have: \(available(vectors)))")
    }

    /// "evil (response_avg, prompt_avg, prompt_last), happy" for error messages.
    public static func available(_ vectors: [TraitVector]) -> String {
        defaults(vectors).map { d in
            let methods = vectors.filter { $0.trait == d.trait }.map(\.method)
            return methods.count > 1 ? "\(d.trait) (\(methods.joined(separator: ", ")))" : d.trait
        }.joined(separator: ", ")
    }

    private static func defaultVector(_ trait: String, in vectors: [TraitVector]) -> TraitVector? {
        let forTrait = vectors.filter { $0.trait == trait }
        for m in methodPreference { if let v = forTrait.first(where: { $0.method == m }) { return v } }
        return forTrait.first
    }
}

public struct VectorError: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}
