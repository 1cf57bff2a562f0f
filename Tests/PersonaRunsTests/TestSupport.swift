import Foundation
import XCTest
@testable import PersonaTestSupport

func sharedReferenceURL(_ relative: String) -> URL? { Repository.sharedFile(relative) }
func requireShared(_ relative: String) throws -> URL { try Repository.requireShared(relative) }

func fixtureURL(_ name: String) throws -> URL { try Repository.fixture(name, in: Bundle.module) }

/// Deterministic standard-normal samples (SplitMix64, the fuzzers' FuzzRNG, + Box-Muller) for synthetic curves.
struct GaussianNoise {
    var bits: FuzzRNG
    init(seed: UInt64) { bits = FuzzRNG(seed: seed) }
    mutating func uniform() -> Double { (Double(bits.next() >> 11) + 0.5) / Double(1 << 53) }
    mutating func next() -> Double {
        let u1 = uniform(), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
    mutating func series(_ n: Int, sigma: Double = 1) -> [Double] { (0..<n).map { _ in sigma * next() } }
}
