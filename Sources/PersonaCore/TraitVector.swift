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
    /// The row to monitor and steer by default.
    public var recommendedRow: Int?
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

    /// The default row: the stored recommendation, else about a third of the depth (CAA's finding), else 1.
    public var defaultRow: Int {
        if let r = recommendedRow, r >= 0, r < rows.count { return r }
        return max(1, min(rows.count - 1, numLayers / 3))
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

public struct VectorError: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}
