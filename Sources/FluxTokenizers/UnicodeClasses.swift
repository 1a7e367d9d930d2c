/// How the regular expressions of CLIP's pre-tokenizer (run by `tokenizers` with Oniguruma) see one scalar:
/// `\p{L}`, `\p{N}`, `\s`, or none of them.
enum RegexClass: UInt8, Sendable {
    case letter, number, space, other
}

/// The Unicode version of Oniguruma's tables in `tokenizers` 0.23 (Swift 6.3's own tables are Unicode 17; the
/// scalars added since are `other` to Oniguruma). Checked for every scalar against
/// Tests/Fixtures/tokenizers/unicode_classes.json.
private let oniguramaUnicodeVersion = (major: 16, minor: 0)

extension Unicode.Scalar {
    /// Letter = general category L*, number = N* (Nd, Nl, No), space = White_Space; all as of Unicode 16.
    var regexClass: RegexClass {
        let properties = self.properties
        guard let age = properties.age,
              (age.major, age.minor) <= (oniguramaUnicodeVersion.major, oniguramaUnicodeVersion.minor)
        else { return .other }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return properties.isWhitespace ? .space : .other
        }
    }
}
