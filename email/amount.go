package email

import (
	"strconv"
	"strings"
)

// minorUnits lists the ISO 4217 currencies whose minor unit is not 1/100.
var minorUnits = map[string]int{
	// zero decimals
	"BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
	"PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
	// three decimals
	"BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
	// four decimals
	"CLF": 4, "UYW": 4,
}

// FormatAmount formats an amount in minor units with its ISO 4217 currency:
// 12345 USD is "123.45 USD", 1200 JPY is "1200 JPY", 1234 KWD is "1.234 KWD".
func FormatAmount(minor int64, currency string) string {
	currency = strings.ToUpper(strings.TrimSpace(currency))
	digits, ok := minorUnits[currency]
	if !ok {
		digits = 2
	}
	neg := minor < 0
	u := uint64(minor)
	if neg {
		u = -u
	}
	s := strconv.FormatUint(u, 10)
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s = s[:len(s)-digits] + "." + s[len(s)-digits:]
	}
	if neg {
		s = "-" + s
	}
	return s + " " + currency
}
