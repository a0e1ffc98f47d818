package sfmapi

// SFM's defaults for the fields a write may leave out.
const (
	DefaultLinkType     = "related"
	DefaultLinkStrength = 1.0
)

// Field is a field of SFM's write bodies: POST /memories
// (MemoryStoreRequest) and POST /graph/link (GraphLinkRequest). DELETE
// /memories/{coord} has no body.
type Field int

const (
	FieldCoord      Field = iota // store: "x,y,z"
	FieldPayload                 // store: a JSON object
	FieldMemoryType              // store: "episodic" or "semantic"
	FieldFromCoord               // link
	FieldToCoord                 // link
	FieldLinkType                // link: a string or null (DefaultLinkType)
	FieldStrength                // link: a number (DefaultLinkStrength); there is no "weight"
	FieldMetadata                // link: a JSON object or null, merged into the stored link
	NumFields
)

var fieldNames = [NumFields]string{"coord", "payload", "memory_type", "from_coord", "to_coord", "link_type", "strength", "metadata"}

// String is the field's JSON name.
func (f Field) String() string { return fieldNames[f] }

// StoreFields and LinkFields are the fields of each write body, in the
// order a body jetbox builds lists them.
var (
	StoreFields = []Field{FieldCoord, FieldPayload, FieldMemoryType}
	LinkFields  = []Field{FieldFromCoord, FieldToCoord, FieldLinkType, FieldStrength, FieldMetadata}
)

// Fields holds a body's fields as raw JSON values, nil for an absent one.
type Fields [NumFields][]byte

// AppendBody appends the JSON object of the given fields of fs, in that
// order, leaving out the absent ones. The values are copied byte for
// byte.
func (fs *Fields) AppendBody(dst []byte, fields []Field) []byte {
	dst = append(dst, '{')
	first := true
	for _, f := range fields {
		raw := fs[f]
		if raw == nil {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, fieldNames[f]...)
		dst = append(dst, '"', ':')
		dst = append(dst, raw...)
	}
	return append(dst, '}')
}
